"""URLs of the chat under /portal/chat/."""

from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.session_new, name="new"),
    path("<int:session_id>/", views.session_detail, name="session"),
    path("<int:session_id>/messages/", views.message_create, name="message"),
    path("<int:session_id>/stream/", views.session_stream, name="stream"),
    path("<int:session_id>/rename/", views.rename, name="rename"),
    path("<int:session_id>/delete/", views.delete, name="delete"),
]
