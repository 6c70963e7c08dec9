from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiToken, hash_token


class AgentUser(AnonymousUser):
    """request.user for an agent token: authenticated, but no person and no staff rights."""

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>` (or `Token <key>`) against hashed ApiToken keys."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("malformed Authorization header")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("malformed token") from None
        token = active_token(hash_token(raw))
        if token is None:
            raise exceptions.AuthenticationFailed("invalid or revoked token")
        now = timezone.now()
        # Touch last_used at most once a minute, so a busy agent does not write on every call.
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        if token.kind == ApiToken.Kind.USER:
            if not token.user.is_active:
                raise exceptions.AuthenticationFailed("user inactive")
            return token.user, token
        return AgentUser(), token

    def authenticate_header(self, request) -> str:
        return "Bearer"


Converters = tuple[tuple[int, tuple, object], ...]


@functools.cache
def _token_query() -> tuple[str, int, Converters]:
    """The lookup as SQL written once: every API call makes it, and building it through the
    ORM each time cost more than running it. The columns are the models' own (the token's,
    then its user's), so the instances built from a row are complete."""
    quote = connection.ops.quote_name
    user_model = get_user_model()
    fields = [*ApiToken._meta.concrete_fields, *user_model._meta.concrete_fields]
    user_column = quote(ApiToken._meta.get_field("user").column)
    token_count = len(ApiToken._meta.concrete_fields)
    columns = [
        f"{'t' if index < token_count else 'u'}.{quote(field.column)}"
        for index, field in enumerate(fields)
    ]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(ApiToken._meta.db_table)} t"
        f" LEFT JOIN {quote(user_model._meta.db_table)} u"
        f" ON u.{quote(user_model._meta.pk.column)} = t.{user_column}"
        " WHERE t.key_hash = %s AND t.revoked_at IS NULL"
    )
    # The converters the ORM would apply (SQLite returns datetimes as text, for one).
    converters = []
    for index, field in enumerate(fields):
        column = field.cached_col
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, tuple(found), column))
    return sql, token_count, tuple(converters)


def active_token(key_hash: str) -> ApiToken | None:
    """The unrevoked token with this key hash, with its user (if it has one) loaded."""
    sql, token_count, converters = _token_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, functions, column in converters:
        for convert in functions:
            values[index] = convert(values[index], column, connection)
    token = ApiToken.from_db(connection.alias, None, values[:token_count])
    user = None
    if token.user_id is not None:
        user = get_user_model().from_db(connection.alias, None, values[token_count:])
    ApiToken._meta.get_field("user").set_cached_value(token, user)
    return token
