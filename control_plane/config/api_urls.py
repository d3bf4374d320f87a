"""The `/api/v1/` routes of the control plane's own domains (other apps add their own include line)."""

from typing import Any

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


class ApiRouter(DefaultRouter):
    """The root view (`GET /api/v1/`) lists every collection under `/api/v1/`, not only this router's: the sync
    area's (`edges/urls.py`) and the schedules' (`schedules/urls.py`) are included beside it, and a client that
    starts at the root (the browsable API, a script following links) found neither edges, analytics nor schedules.
    A name that does not resolve is left out by DRF's root view."""

    included = {
        "edges": "edge-list",
        "analytics/records": "analytics-record-list",
        "analytics/usage": "analytics-usage",
        "schedules": "schedule-list",
        "schedules/runs": "schedule-run-list",
        "resources/types": "resource-types",
    }

    def get_api_root_view(self, api_urls: Any = None) -> Any:
        listed = {prefix: self.routes[0].name.format(basename=basename) for prefix, _, basename in self.registry}
        return self.APIRootView.as_view(api_root_dict={**listed, **self.included})


router = ApiRouter()
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
