"""The right to be forgotten: a fan with purchases, medals, downloads, a refund request and
sessions asks to be deleted; erasure waits for the cooling-off period, then the scheduled job
erases the account. Afterwards no text column of any table holds the old address or display
name, the financial record is still there under the tombstone id, unclaimed medals left through a
ledger entry, the invariants hold, the old sign-in is dead and the address can register again."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from auth_helpers import new_email
from personal_data import places_holding
from supabase_auth.errors import AuthApiError

from koepon.localstack.fakes import events as ev
from koepon.localstack.seed import ADMIN, HOSHI_GACHA
from koepon.settings import ANON_KEY, SERVICE_ROLE_KEY
from koepon.tools import invariants
from supabase import ClientOptions, create_client

PASSWORD = "correct horse 1"


def client(api: str):
    return create_client(api, ANON_KEY, ClientOptions(auto_refresh_token=False, persist_session=False,
                                                      headers={"User-Agent": "ErasureTestPhone/1.0"}))


def _service(db_url: str, query: str, params: tuple = ()):
    with psycopg.connect(db_url) as conn:
        conn.execute("select set_config('request.jwt.claims', '{\"role\": \"service_role\"}', true), "
                     "set_config('role', 'service_role', true)")
        row = conn.execute(query, params).fetchone()
        conn.commit()
        return row[0] if row else None


def _as_user(db_url: str, uid: str, query: str, params: tuple = ()):
    with psycopg.connect(db_url) as conn:
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                     (json.dumps({"sub": uid, "role": "authenticated", "aud": "authenticated"}),))
        row = conn.execute(query, params).fetchone()
        conn.commit()
        return row[0] if row else None


@pytest.fixture(scope="module")
def fan(api, seeded_db_url):
    """A fan with a paid, fulfilled order (medals, rewards), a download, a refund request, a session."""
    email = new_email("forget-me")
    name = f"忘れて太郎 {uuid.uuid4().hex[:6]}"
    adm = create_client(api, SERVICE_ROLE_KEY, ClientOptions(auto_refresh_token=False, persist_session=False))
    uid = adm.auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True,
                                      "user_metadata": {"display_name": name}}).user.id
    sb = client(api)
    sb.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    sb.rpc("update_my_profile", {"p_display_name": name, "p_birth_date": "1990-04-01"}).execute()
    orders = []
    for _ in range(2):
        o = sb.rpc("create_order", {"p_gacha_id": HOSHI_GACHA, "p_pull_count": 1,
                                    "p_idempotency_key": uuid.uuid4().hex}).execute().data
        [event] = ev.stripe_outcome_events(o["order_id"], o["amount_jpy"], "succeeded")
        event["data"]["object"]["receipt_email"] = email  # the provider's copy names the fan
        _service(seeded_db_url, "select public.service_record_payment_event('stripe', %s, %s, %s)",
                 (event["id"], event["type"], json.dumps(event)))
        orders.append(o["order_id"])
    with psycopg.connect(seeded_db_url) as conn:
        reward = conn.execute("select id from app.user_rewards where user_id = %s limit 1", (uid,)).fetchone()[0]
    sb.rpc("request_download", {"p_user_reward_id": str(reward)}).execute()
    sb.rpc("request_refund", {"p_order_id": orders[0], "p_reason": f"{name} は間違えて買いました"}).execute()
    return {"email": email, "name": name, "uid": uid, "client": sb, "orders": orders}


def test_erasure_after_cooling_off_keeps_the_books_and_forgets_the_person(api, seeded_db_url, fan):
    uid, sb = fan["uid"], fan["client"]
    with psycopg.connect(seeded_db_url) as conn:
        balance = conn.execute("select coalesce(sum(balance), 0) from app.medal_balances where user_id = %s",
                               (uid,)).fetchone()[0]
        assert conn.execute("select count(*) from app.downloads where user_id = %s and client_ip is not null",
                            (uid,)).fetchone()[0] == 1
    assert balance > 0
    assert places_holding(seeded_db_url, fan["email"]) and places_holding(seeded_db_url, fan["name"])

    req = sb.rpc("request_account_deletion", {}).execute().data
    assert req["status"] == "pending" and req["erase_after"] > req["requested_at"]
    assert sb.rpc("request_account_deletion", {}).execute().data["erase_after"] == req["erase_after"]
    # During the cooling-off period an admin cannot erase yet, and the fan can still cancel.
    admin_client = client(api)
    admin_client.auth.sign_in_with_password({"email": ADMIN[0], "password": ADMIN[1]})
    with pytest.raises(Exception) as exc:
        admin_client.rpc("admin_erase_account", {"p_user_id": uid}).execute()
    assert "cooling_off" in str(exc.value)
    with psycopg.connect(seeded_db_url) as conn:
        assert conn.execute("select private.erase_due_accounts(now())").fetchone()[0] == 0
    assert sb.rpc("cancel_account_deletion", {}).execute().data["status"] == "cancelled"
    assert sb.rpc("request_account_deletion", {}).execute().data["status"] == "pending"

    # The cooling-off period passes; the scheduled job's command erases the account.
    with psycopg.connect(seeded_db_url) as conn:
        conn.execute("update app.account_deletions set requested_at = now() - interval '15 days', "
                     "erase_after = now() - interval '1 day' where user_id = %s", (uid,))
        command = conn.execute("select command from private.job_definitions() where name = 'koepon_erase_accounts'"
                               ).fetchone()[0]
        assert conn.execute(command).fetchone()[0] == 1
        conn.commit()

    assert places_holding(seeded_db_url, fan["email"]) == []
    assert places_holding(seeded_db_url, fan["name"]) == []
    with psycopg.connect(seeded_db_url) as conn:
        # The books stay, tied to the same (now anonymous) id.
        assert conn.execute("select count(*) from app.orders where user_id = %s and status = 'fulfilled'",
                            (uid,)).fetchone()[0] == 2
        assert conn.execute("select count(*) from app.payments p join app.orders o on o.id = p.order_id "
                            "where o.user_id = %s", (uid,)).fetchone()[0] == 2
        assert conn.execute("select count(*) from app.refunds where user_id = %s", (uid,)).fetchone()[0] == 1
        forfeited = conn.execute("select coalesce(-sum(delta), 0) from app.medal_ledger where user_id = %s "
                                 "and reason = 'account_forfeiture'", (uid,)).fetchone()[0]
        assert forfeited == balance
        assert conn.execute("select coalesce(sum(balance), 0) from app.medal_balances where user_id = %s",
                            (uid,)).fetchone()[0] == 0
        assert conn.execute("select count(*) from app.downloads where user_id = %s and (client_ip is not null "
                            "or user_agent is not null)", (uid,)).fetchone()[0] == 0
        assert conn.execute("select count(*) from auth.sessions where user_id = %s", (uid,)).fetchone()[0] == 0
        profile = conn.execute("select display_name, birth_date, status from app.profiles where user_id = %s",
                               (uid,)).fetchone()
        assert profile == ("deleted user", None, "suspended")
        assert invariants.check(conn) == []
    with pytest.raises(AuthApiError):
        client(api).auth.sign_in_with_password({"email": fan["email"], "password": PASSWORD})
    with pytest.raises(Exception) as exc:
        admin_client.rpc("admin_erase_account", {"p_user_id": uid}).execute()
    assert "already_erased" in str(exc.value)

    # The address is free again: a new account, a new id.
    again = create_client(api, SERVICE_ROLE_KEY, ClientOptions(auto_refresh_token=False, persist_session=False))
    new_user = again.auth.admin.create_user({"email": fan["email"], "password": PASSWORD, "email_confirm": True}).user
    assert new_user.id != uid
    assert client(api).auth.sign_in_with_password({"email": fan["email"], "password": PASSWORD}).session


def test_deletion_request_errors(api, seeded_db_url):
    anon = client(api)
    with pytest.raises(Exception) as exc:
        anon.rpc("request_account_deletion", {}).execute()
    assert "not_authenticated" in str(exc.value) or "permission denied" in str(exc.value)
    email = new_email()
    adm = create_client(api, SERVICE_ROLE_KEY, ClientOptions(auto_refresh_token=False, persist_session=False))
    adm.auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    sb = client(api)
    sb.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    with pytest.raises(Exception) as exc:
        sb.rpc("cancel_account_deletion", {}).execute()
    assert "deletion_not_requested" in str(exc.value)
    # A fan may not erase anyone.
    with pytest.raises(Exception) as exc:
        sb.rpc("admin_erase_account", {"p_user_id": str(uuid.uuid4())}).execute()
    assert "admin_only" in str(exc.value)
