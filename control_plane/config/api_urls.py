"""The `/api/v1/` routes of the control plane's own domains (other apps add their own include line)."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from control_plane.accounts.apis import GroupViewSet, UserViewSet
from control_plane.accounts.role_apis import NamespaceRoleViewSet
from control_plane.accounts.token_apis import ApiTokenViewSet, ObtainTokenView
from control_plane.applications.apis import AppViewSet, CredentialViewSet
from control_plane.audit.apis import AuditEntryViewSet
from control_plane.budgets.apis import BudgetViewSet
from control_plane.catalog.apis import DatasourceViewSet, ModelPriceViewSet, TagViewSet, ToolViewSet
from control_plane.kv.apis import KVEntryViewSet
from control_plane.llms.apis import LLMViewSet
from control_plane.plugins.apis import PluginViewSet, ResourceInstancesView, ResourceTypesView
from control_plane.retrieval.apis import DatasourceDocumentsView, DatasourceDocumentView
from control_plane.sync.apis import ConfigChangeViewSet

router = DefaultRouter()
router.register("users", UserViewSet, basename="user")
router.register("groups", GroupViewSet, basename="group")
router.register("namespace-roles", NamespaceRoleViewSet, basename="namespacerole")
router.register("auth/tokens", ApiTokenViewSet, basename="apitoken")
router.register("apps", AppViewSet, basename="app")
router.register("credentials", CredentialViewSet, basename="credential")
router.register("llms", LLMViewSet, basename="llm")
router.register("tools", ToolViewSet, basename="tool")
router.register("datasources", DatasourceViewSet, basename="datasource")
router.register("tags", TagViewSet, basename="tag")
router.register("model-prices", ModelPriceViewSet, basename="modelprice")
router.register("budgets", BudgetViewSet, basename="budget")
router.register("plugins", PluginViewSet, basename="plugin")
router.register("kv-entries", KVEntryViewSet, basename="kventry")
router.register("config-changes", ConfigChangeViewSet, basename="configchange")
router.register("audit", AuditEntryViewSet, basename="auditentry")

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    path("resources/types/", ResourceTypesView.as_view(), name="resource-types"),
    path("resources/types/<slug:type_slug>/", ResourceInstancesView.as_view(), name="resource-instances"),
    path("datasources/<int:pk>/documents/", DatasourceDocumentsView.as_view(), name="datasource-documents"),
    path(
        "datasources/<int:pk>/documents/<int:document_id>/",
        DatasourceDocumentView.as_view(),
        name="datasource-document",
    ),
    *router.urls,
]
