from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from orchestration.errors import DomainError


def exception_handler(exc, context):
    """Domain errors become their status with a clear message and the details that help."""
    if isinstance(exc, DomainError):
        body = {"detail": exc.message, "code": exc.code}
        body.update({key: value for key, value in exc.details.items() if value is not None})
        return Response(body, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "message_dict"):
            return Response(exc.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response({"detail": exc.messages}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
