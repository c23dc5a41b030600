"""Publishing a gacha and creating or re-pointing an exchange item refuse content that is not in
Storage, through the real clients: 422 content_object_missing until the VTuber uploads it."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from postgrest.exceptions import APIError

from koepon.localstack.seed import HOSHI, HOSHI_VTUBER
from koepon.settings import ANON_KEY
from supabase import create_client


@pytest.fixture
def vtuber(api_url):
    c = create_client(api_url, ANON_KEY)
    c.auth.sign_in_with_password({"email": HOSHI.email, "password": HOSHI.password})
    return c


def _refused(call) -> dict:
    with pytest.raises(APIError) as exc:
        call.execute()
    return {"code": exc.value.code, "message": exc.value.message, "details": exc.value.details or ""}


def test_publish_refuses_an_item_whose_content_was_never_uploaded(vtuber):
    now = dt.datetime.now(dt.UTC)
    g = vtuber.rpc("create_gacha", {"p_title": "Needs content", "p_start_at": now.isoformat(),
                                    "p_end_at": (now + dt.timedelta(days=7)).isoformat()}).execute().data
    path = f"{HOSHI_VTUBER}/gacha/{uuid.uuid4().hex}.mp3"
    vtuber.rpc("add_gacha_item", {"p_gacha_id": g["id"], "p_name": "only", "p_rarity": "N",
                                  "p_rate_ppm": 1_000_000, "p_content_path": path}).execute()
    err = _refused(vtuber.rpc("publish_gacha", {"p_gacha_id": g["id"]}))
    assert (err["code"], err["message"]) == ("PT422", "content_object_missing")
    assert path in err["details"]
    vtuber.storage.from_("rewards").upload(path, b"ID3 voice", {"content-type": "audio/mpeg"})
    assert vtuber.rpc("publish_gacha", {"p_gacha_id": g["id"]}).execute().data["status"] == "published"


def test_exchange_item_needs_its_content_uploaded(vtuber):
    path = f"{HOSHI_VTUBER}/exchange/{uuid.uuid4().hex}.png"
    args = {"p_name": "Signed card", "p_medal_cost": 50, "p_content_path": path}
    err = _refused(vtuber.rpc("create_exchange_item", args))
    assert (err["code"], err["message"]) == ("PT422", "content_object_missing")
    vtuber.storage.from_("rewards").upload(path, b"\x89PNG", {"content-type": "image/png"})
    item = vtuber.rpc("create_exchange_item", args).execute().data
    assert item["status"] == "active"
    moved = f"{HOSHI_VTUBER}/exchange/{uuid.uuid4().hex}.png"
    err = _refused(vtuber.rpc("update_exchange_item", {"p_exchange_item_id": item["id"],
                                                       "p_patch": {"content_path": moved}}))
    assert (err["code"], err["message"]) == ("PT422", "content_object_missing")
