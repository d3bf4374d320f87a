"""Admin page `/admin/resources/`: every resource type of the resource-provider plugins with its instances."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from .models import Plugin
from .resources import resource_instances, resource_types


def resource_types_view(request: HttpRequest) -> HttpResponse:
    """Administrators only (not a staff user who administers nothing): instances come from the plugins."""
    from control_plane.accounts.access import access_for

    access = access_for(request.user)
    if not access.administers_anything:
        raise PermissionDenied
    plugins = access.filter_visible(Plugin.objects.all())  # not another namespace's collections
    types = []
    for rtype in resource_types(plugins):
        instances, problems = resource_instances(rtype["slug"], plugins)
        mine = [i for i in instances if i["plugin"] == rtype["plugin"]]
        types.append({**rtype, "instances": mine, "problems": problems})
    context = {**admin.site.each_context(request), "title": "Resource types", "types": types}
    return TemplateResponse(request, "plugins/resource_types.html", context)
