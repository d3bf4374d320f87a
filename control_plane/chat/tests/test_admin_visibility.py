"""The admin's chat sessions (read-only, for support) are shown only to those who may view the namespace of what
the session talks to: a viewer of team-a read everyone's conversations with team-b's LLMs and agents."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from control_plane.accounts.models import NamespaceRole
from control_plane.chat.models import ChatMessage, ChatSession
from control_plane.llms.services import llm_create
from control_plane.plugins.models import Plugin

pytestmark = pytest.mark.django_db


@pytest.fixture
def sessions(django_user_model):
    carol = django_user_model.objects.create_user("carol", password="pw-Carol-123456!")
    made = {}
    for ns in ("team-a", "team-b"):
        llm = llm_create(
            data={"name": f"GPT {ns}", "slug": f"gpt-{ns}", "vendor": "mock", "api_endpoint": "http://mock.local/v1",
                  "namespace": ns}
        )  # fmt: skip
        made[ns] = ChatSession.objects.create(user=carol, llm=llm, title=f"salary talk {ns}")
        ChatMessage.objects.create(session=made[ns], role="user", content=f"my salary in {ns}", status="answered")
    agent = Plugin.objects.create(slug="hr-agent", name="HR agent", namespace="team-b", import_path="x.y:Agent")
    made["agent-b"] = ChatSession.objects.create(user=carol, agent=agent, title="agent talk team-b")
    return made


def test_a_viewer_reads_only_the_sessions_with_its_namespaces_llms_and_agents(sessions, admin_client):
    viewer = get_user_model().objects.create_user("viewer-a", password="pw-Viewer-123456!", is_staff=True)
    NamespaceRole.objects.create(user=viewer, namespace="team-a", role="viewer")
    client = Client()
    client.force_login(viewer)
    listing = client.get("/admin/chat/chatsession/")
    assert listing.status_code == 200
    assert [s.title for s in listing.context["cl"].result_list] == ["salary talk team-a"]
    shown = client.get(f"/admin/chat/chatsession/{sessions['team-a'].pk}/change/")
    assert shown.status_code == 200 and "my salary in team-a" in shown.content.decode()
    for hidden in (sessions["team-b"], sessions["agent-b"]):
        page = client.get(f"/admin/chat/chatsession/{hidden.pk}/change/")
        assert page.status_code in (302, 404) and "my salary in team-b" not in page.content.decode()
    everything = admin_client.get("/admin/chat/chatsession/")
    assert len(everything.context["cl"].result_list) == 3
