"""Structured JSON logs on stdout (Powertools' Logger works the same outside Lambda)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

SERVICE = "eks-capture-agent"


def agent_logger(role: str) -> Logger:
    """The one logger of a role; every line carries the role and, once known, the identity keys."""
    logger = Logger(service=SERVICE)
    logger.append_keys(role=role)
    return logger
