"""VTuber uploads through the local Storage with the real client: own prefix only, fans never,
and the buckets' size and type limits refused with Storage's answers."""

from __future__ import annotations

import uuid

import httpx
import pytest
from storage3.exceptions import StorageApiError

from koepon.localstack.seed import FAN, HOSHI, HOSHI_VTUBER, LUNA, LUNA_VTUBER
from koepon.settings import ANON_KEY
from supabase import create_client


def _signed_in(api_url, login):
    c = create_client(api_url, ANON_KEY)
    c.auth.sign_in_with_password({"email": login.email, "password": login.password})
    return c


def test_vtuber_uploads_and_replaces_under_their_own_prefix(api_url):
    vt = _signed_in(api_url, HOSHI)
    name = f"{HOSHI_VTUBER}/gacha/{uuid.uuid4().hex}.mp3"
    vt.storage.from_("rewards").upload(name, b"ID3 voice", {"content-type": "audio/mpeg"})
    with pytest.raises(StorageApiError) as dup:
        vt.storage.from_("rewards").upload(name, b"ID3 again", {"content-type": "audio/mpeg"})
    assert dup.value.status == 409 or str(dup.value.status) == "409"
    vt.storage.from_("rewards").upload(name, b"ID3 again", {"content-type": "audio/mpeg", "upsert": "true"})


def test_vtuber_cannot_write_under_another_prefix_and_a_fan_not_at_all(api_url):
    vt = _signed_in(api_url, HOSHI)
    with pytest.raises(StorageApiError, match="row-level security"):
        vt.storage.from_("rewards").upload(f"{LUNA_VTUBER}/gacha/{uuid.uuid4().hex}.mp3", b"x",
                                           {"content-type": "audio/mpeg"})
    fan = _signed_in(api_url, FAN)
    with pytest.raises(StorageApiError, match="row-level security"):
        fan.storage.from_("rewards").upload(f"{HOSHI_VTUBER}/gacha/{uuid.uuid4().hex}.mp3", b"x",
                                            {"content-type": "audio/mpeg"})
    with pytest.raises(StorageApiError, match="row-level security"):
        fan.storage.from_("avatars").upload(f"{HOSHI_VTUBER}/{uuid.uuid4().hex}.png", b"x",
                                            {"content-type": "image/png"})


def test_oversize_and_wrong_type_get_storage_answers(api_url):
    token = _signed_in(api_url, HOSHI).auth.get_session().access_token
    headers = {"Authorization": f"Bearer {token}", "apikey": ANON_KEY}
    big = httpx.post(f"{api_url}/storage/v1/object/avatars/{HOSHI_VTUBER}/big.png",
                     content=b"\0" * (5 * 1024 * 1024 + 1), headers={**headers, "Content-Type": "image/png"})
    assert big.status_code == 413
    assert big.json() == {"statusCode": "413", "error": "Payload too large",
                          "message": "The object exceeded the maximum allowed size"}
    wrong = httpx.post(f"{api_url}/storage/v1/object/avatars/{HOSHI_VTUBER}/a.png", content=b"<svg/>",
                       headers={**headers, "Content-Type": "image/svg+xml"})
    assert wrong.status_code == 415
    assert wrong.json() == {"statusCode": "415", "error": "invalid_mime_type",
                            "message": "mime type image/svg+xml is not supported"}
    ok = httpx.post(f"{api_url}/storage/v1/object/avatars/{HOSHI_VTUBER}/a.png", content=b"\x89PNG",
                    headers={**headers, "Content-Type": "image/png"})
    assert ok.status_code == 200, ok.text


def test_list_move_copy_remove_and_public_urls(api_url):
    vt = _signed_in(api_url, HOSHI)
    folder = f"{HOSHI_VTUBER}/t{uuid.uuid4().hex[:8]}"
    bucket = vt.storage.from_("rewards")
    bucket.upload(f"{folder}/a.mp3", b"A", {"content-type": "audio/mpeg"})
    bucket.upload(f"{folder}/sub/b.mp3", b"B", {"content-type": "audio/mpeg"})
    listed = bucket.list(folder)
    assert [(e["name"], e["id"] is None) for e in listed] == [("sub", True), ("a.mp3", False)]
    bucket.move(f"{folder}/a.mp3", f"{folder}/moved.mp3")
    bucket.copy(f"{folder}/moved.mp3", f"{folder}/copy.mp3")
    assert sorted(e["name"] for e in bucket.list(folder)) == ["copy.mp3", "moved.mp3", "sub"]
    assert bucket.download(f"{folder}/copy.mp3") == b"A"
    # Another VTuber sees nothing under this prefix and can neither move nor delete it.
    luna = _signed_in(api_url, LUNA).storage.from_("rewards")
    assert luna.list(folder) == []
    with pytest.raises(StorageApiError):
        luna.move(f"{folder}/copy.mp3", f"{LUNA_VTUBER}/stolen.mp3")
    assert luna.remove([f"{folder}/copy.mp3"]) == []
    removed = bucket.remove([f"{folder}/copy.mp3", f"{folder}/moved.mp3"])
    assert sorted(r["name"] for r in removed) == [f"{folder}/copy.mp3", f"{folder}/moved.mp3"]
    assert [e["name"] for e in bucket.list(folder)] == ["sub"]
    # Public URLs serve the public avatars bucket to anyone, never the private content bucket.
    avatars = vt.storage.from_("avatars")
    avatars.upload(f"{HOSHI_VTUBER}/face.png", b"\x89PNG face", {"content-type": "image/png", "upsert": "true"})
    url = avatars.get_public_url(f"{HOSHI_VTUBER}/face.png")
    assert httpx.get(url).content == b"\x89PNG face"
    private = httpx.get(bucket.get_public_url(f"{folder}/sub/b.mp3"))
    assert private.status_code == 400 and private.json()["error"] == "Bucket not found"
