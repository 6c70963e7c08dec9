from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.db import connection
from django.test import Client, RequestFactory
from django.utils import timezone

from audit.models import AuditEntry
from identity.models import LoginThrottle
from tests.factories import UserFactory

PASSWORD = "pw-for-tests-1"
LOCK_MESSAGE = "Too many failed attempts; try again in 15 minutes."


def sign_in(client: Client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def fail(client: Client, username: str, times: int, address: str = "127.0.0.1") -> None:
    for _ in range(times):
        assert sign_in(client, username, "wrong", address).status_code == 400


def alert(response) -> str:
    return re.search(r'<p class="error" role="alert">([^<]*)</p>', response.content.decode())[1]


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.django_db
def test_password_sign_in_redirects_and_records_the_login(client):
    # given
    UserFactory(username="alice")
    # when
    response = sign_in(client, "alice", PASSWORD)
    # then
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert is_signed_in(client)
    entry = AuditEntry.objects.get(action="auth.login")
    assert (entry.actor, entry.workspace_id) == ("user:alice", None)
    assert entry.details == {"method": "password", "address": "127.0.0.1"}


@pytest.mark.django_db
def test_wrong_password_answers_400_and_is_recorded_without_the_password(client):
    UserFactory(username="alice")

    response = sign_in(client, "alice", "hunter2-guess")

    assert response.status_code == 400
    assert b"Please enter a correct username and password" in response.content
    assert not is_signed_in(client)
    entry = AuditEntry.objects.get(action="auth.login_failed")
    assert entry.target == "user:alice"
    assert entry.details == {
        "address": "127.0.0.1",
        "step": "password",
        "reason": "bad_credentials",
    }
    assert "hunter2-guess" not in str(entry.details)


@pytest.mark.django_db
def test_five_failures_lock_the_username_even_for_the_right_password(client):
    # given
    UserFactory(username="alice")
    fail(client, "alice", 5)
    # when
    response = sign_in(client, "alice", PASSWORD)
    # then
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert LOCK_MESSAGE in response.content.decode()
    assert not is_signed_in(client)
    lockout = AuditEntry.objects.get(action="auth.lockout")
    assert lockout.target == "username:alice"
    refused = AuditEntry.objects.filter(action="auth.login_failed", details__reason="locked_out")
    assert refused.count() == 1
    assert not AuditEntry.objects.filter(action="auth.login").exists()


@pytest.mark.django_db
def test_lockout_reads_the_same_for_an_unknown_username(client):
    UserFactory(username="alice")
    fail(client, "alice", 5)
    fail(client, "nobody-here", 5)

    known = sign_in(client, "alice", "wrong")
    unknown = sign_in(client, "nobody-here", "wrong")

    assert (known.status_code, unknown.status_code) == (429, 429)
    assert alert(known) == alert(unknown) == LOCK_MESSAGE


@pytest.mark.django_db
def test_usernames_are_counted_case_insensitively(client):
    UserFactory(username="alice")
    fail(client, "Alice", 3)
    fail(client, "ALICE", 2)

    assert sign_in(client, "alice", PASSWORD).status_code == 429


@pytest.mark.django_db
def test_a_completed_sign_in_resets_the_username_counter(client):
    # given four failures, then a success
    UserFactory(username="alice")
    fail(client, "alice", 4)
    assert sign_in(client, "alice", PASSWORD).status_code == 302
    client.logout()
    # when four more fail
    fail(client, "alice", 4)
    # then the fifth try still gets its password checked
    assert sign_in(client, "alice", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_lock_lifts_after_its_time(client):
    UserFactory(username="alice")
    fail(client, "alice", 5)
    assert sign_in(client, "alice", PASSWORD).status_code == 429

    past = timezone.now() - timedelta(minutes=16)
    LoginThrottle.objects.filter(key="alice").update(locked_until=past, window_started_at=past)

    assert sign_in(client, "alice", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_failures_older_than_the_window_are_forgotten(client):
    UserFactory(username="alice")
    fail(client, "alice", 4)
    past = timezone.now() - timedelta(minutes=16)
    LoginThrottle.objects.filter(key="alice").update(window_started_at=past)

    fail(client, "alice", 4)

    assert sign_in(client, "alice", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_one_address_trying_many_usernames_is_locked_but_others_are_not(client, settings):
    # given an address limit of 3, spread over usernames that never reach their own limit
    settings.IDENTITY_LOCKOUT = {**settings.IDENTITY_LOCKOUT, "ADDRESS_ATTEMPTS": 3}
    UserFactory(username="alice")
    for name in ("bob", "carol", "dave"):
        fail(client, name, 1, address="10.0.0.66")
    # when
    from_attacker = sign_in(client, "alice", PASSWORD, address="10.0.0.66")
    from_elsewhere = sign_in(Client(), "alice", PASSWORD, address="10.0.0.7")
    # then
    assert from_attacker.status_code == 429
    assert from_elsewhere.status_code == 302
    assert AuditEntry.objects.get(action="auth.lockout").target == "address:10.0.0.66"


@pytest.mark.django_db
def test_every_authenticate_call_counts_so_the_admin_form_is_covered_too():
    # given the admin form's path: django.contrib.auth.authenticate with a request
    UserFactory(username="root", is_staff=True, is_superuser=True)
    request = RequestFactory().post("/admin/login/", REMOTE_ADDR="10.1.1.1")
    for _ in range(5):
        assert authenticate(request, username="root", password="wrong") is None
    # when
    user = authenticate(request, username="root", password=PASSWORD)
    # then
    assert user is None
    assert request.identity_locked_out.message == LOCK_MESSAGE


@pytest.mark.django_db
def test_admin_login_goes_through_the_sign_in_page(client):
    response = client.get("/admin/login/?next=/admin/accounts/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=%2Fadmin%2Faccounts%2F"


@pytest.mark.django_db
def test_admin_login_refuses_a_foreign_next(client):
    response = client.get("/admin/login/?next=https://evil.example/")

    assert response["Location"] == "/login/?next=%2Fadmin%2F"


@pytest.mark.django_db(transaction=True)
def test_concurrent_guesses_get_at_most_the_limit_of_password_checks():
    # given 16 simultaneous wrong guesses against a limit of 5
    UserFactory(username="alice")
    barrier = threading.Barrier(16)
    results: list[object] = []

    def guess() -> None:
        request = RequestFactory().post("/login/", REMOTE_ADDR="10.9.9.9")
        barrier.wait()
        try:
            results.append(authenticate(request, username="alice", password="wrong"))
        finally:
            connection.close()

    threads = [threading.Thread(target=guess) for _ in range(16)]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then exactly five passwords were checked; the other eleven were refused unchecked
    assert results == [None] * 16
    failed = AuditEntry.objects.filter(action="auth.login_failed")
    assert failed.filter(details__reason="bad_credentials").count() == 5
    assert failed.filter(details__reason="locked_out").count() == 11
    row = LoginThrottle.objects.get(scope="username", key="alice")
    assert row.failures == 5
    assert row.locked_until is not None


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "6.6.6.6", "10.0.0.1"),  # no proxy trusted: a client-written header is ignored
        (1, "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the proxy's entry, not the client's
        (1, "", "10.0.0.1"),
        (2, "198.51.100.7", "10.0.0.1"),  # fewer entries than proxies: do not guess
    ],
)
def test_the_client_address_trusts_only_the_configured_proxies(
    settings, rf, hops, forwarded, expected
):
    from identity.signin import client_address

    settings.TRUSTED_PROXY_HOPS = hops
    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected
