"""The base class of every policy and scenario model.

:class:`PolicyModel` is a frozen pydantic model that refuses unknown keys with a
"did you mean" suggestion, renames accepted synonyms (Istio spelling next to
meshsim spelling) and lets each subclass expand its shorthand before the
fields are validated. The error it raises is a
``pydantic_core.PydanticCustomError`` of type ``unknown_key`` whose context
carries the key, so ``meshsim.config`` can turn it into a one-line
``ConfigError`` naming the field path.

This module imports only pydantic; ``meshsim.config`` builds on it, never the
other way round.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

__all__ = ["PolicyModel", "Trap", "suggest", "refuse"]


def suggest(word: str, choices: object) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``.

    Examples
    --------
    >>> suggest("replicaz", ["replicas", "workers"])
    "; did you mean 'replicas'?"
    >>> suggest("zzz", ["replicas"])
    ''
    """
    names = [str(c) for c in choices]  # type: ignore[attr-defined]
    close = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Trap(str):
    """One warning of a policy module's ``lint()``: a valid setting that does not do what it says.

    The value *is* the message (a ``str``, so lint output prints and joins as
    text); the attributes say which trap it is, for :mod:`meshsim.lint`:

    Attributes
    ----------
    code
        Stable code of the trap (``"MS101"``), documented in ``docs/lint.md``.
    field
        Where, inside the linted policy, in Envoy's field names
        (``"retry_on"``, ``"abort.percentage"``).
    value
        The offending value as it reads in a report (``"gateway-errors"``,
        ``"unset"``, ``"1s"``).

    Examples
    --------
    >>> t = Trap("retry_budget is empty", code="MS106", field="retry_budget", value="{}")
    >>> t.code, t.field, t.value, "empty" in t
    ('MS106', 'retry_budget', '{}', True)
    """

    code: str
    field: str
    value: str

    def __new__(cls, message: str, *, code: str, field: str, value: object = "") -> Trap:
        self = super().__new__(cls, message)
        self.code = code
        self.field = field
        self.value = str(value)
        return self

    def __repr__(self) -> str:
        return f"Trap({str(self)!r}, code={self.code!r}, field={self.field!r}, value={self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_trap, (str(self), self.code, self.field, self.value))


def _trap(message: str, code: str, field: str, value: str) -> Trap:
    return Trap(message, code=code, field=field, value=value)


def refuse(message: str, subpath: str = "") -> PydanticCustomError:
    """A validation error whose message is used verbatim by ``meshsim.config``.

    Parameters
    ----------
    message
        One line naming the offending value and what is allowed.
    subpath
        Where, below the model being validated, the problem is
        (``"script[1].call"``); ``""`` for the model itself.
    """
    # braces in a message would be read as a template by pydantic
    return PydanticCustomError("meshsim", "{message}", {"message": message, "subpath": subpath})


class PolicyModel(BaseModel):
    """Frozen, strict-keyed base model.

    Subclasses may set ``_synonyms`` (accepted input key -> field name) and
    override :meth:`_expand` to turn shorthand input into a mapping.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)

    #: accepted alternative spelling of a key -> the field it fills
    _synonyms: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def _expand(cls, data: Any) -> Any:
        """Turn shorthand input (a string, a bare list, ...) into a mapping."""
        return data

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """Every key this model accepts in a mapping, fields first."""
        return [*cls.model_fields, *cls._synonyms]

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: Any) -> Any:
        data = cls._expand(data)
        if not isinstance(data, Mapping):
            return data
        allowed = cls.allowed_keys()
        for key in data:
            if key not in allowed:
                raise PydanticCustomError(
                    "unknown_key",
                    "unknown key {key}{hint} (allowed: {allowed})",
                    {
                        "key": repr(key),
                        "hint": suggest(key, allowed),
                        "allowed": ", ".join(allowed),
                        "name": str(key),
                    },
                )
        if cls._synonyms and any(k in data for k in cls._synonyms):
            out = dict(data)
            for alt, field in cls._synonyms.items():
                if alt in out:
                    if field in out:
                        raise refuse(f"give either {field!r} or {alt!r}, not both")
                    out[field] = out.pop(alt)
            return out
        return data
