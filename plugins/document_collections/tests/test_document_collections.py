"""Collections come from config with their privacy scores; unknown and switched-off ones are refused."""

from __future__ import annotations

from plugins.document_collections.plugin import TYPE_SLUG, DocumentCollections
from shared_sdk.testing import PluginHarness

CONFIG = {
    "collections": [
        {"id": "handbook", "name": "Employee handbook", "privacy_score": 20, "documents": 140},
        {"id": "contracts", "name": "Customer contracts", "privacy_score": 80, "active": False},
    ]
}


async def test_lists_and_gets_collections_with_scores() -> None:
    async with PluginHarness(DocumentCollections(), runtime="studio", config=CONFIG) as h:
        types = await h.call("get_resource_types")
        assert [t.slug for t in types] == [TYPE_SLUG]
        listed = await h.call("list_resources", TYPE_SLUG)
        assert [(r.id, r.privacy_score, r.is_active) for r in listed] == [
            ("handbook", 20, True),
            ("contracts", 80, False),
        ]
        assert (await h.call("get_resource", TYPE_SLUG, "handbook")).metadata == {"documents": 140}
        assert await h.call("get_resource", TYPE_SLUG, "nope") is None
        assert await h.call("list_resources", "other-type") == []


async def test_selection_refuses_unknown_and_inactive() -> None:
    async with PluginHarness(DocumentCollections(), runtime="studio", config=CONFIG) as h:
        ok = await h.call("validate_resource_selection", TYPE_SLUG, ["handbook"])
        assert ok.valid
        bad = await h.call("validate_resource_selection", TYPE_SLUG, ["contracts", "ghost"])
        assert not bad.valid and bad.errors == ["No collection 'ghost'.", "Collection 'contracts' is switched off."]


async def test_config_schema_refuses_a_score_out_of_range() -> None:
    import pytest

    from shared_sdk import PluginConfigError
    from shared_sdk.host._config import validate_config

    schema = DocumentCollections().get_config_schema()
    with pytest.raises(PluginConfigError):
        validate_config("dc", schema, {"collections": [{"id": "x", "name": "X", "privacy_score": 101}]})
