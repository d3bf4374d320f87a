from rest_framework.routers import SimpleRouter

from .views import PluginScheduleViewSet, ScheduleRunViewSet

router = SimpleRouter()
router.register("runs", ScheduleRunViewSet, basename="schedule-run")
router.register("", PluginScheduleViewSet, basename="schedule")

urlpatterns = router.urls
