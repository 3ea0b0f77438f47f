"""Errors a user can cause, and what each means on the wire. Each message says what was wrong and what would be right.

The CLI prints a `ZooError` as one line and exits non-zero; anything else is a bug and keeps its traceback. Every
class carries its HTTP `status` and the Hugging Face Hub error `code` that the `huggingface_hub` client reads from
`X-Error-Code` (as datasette's `Base400.status` and mlflow's error-code table do), so the server answers every error
in one place, in one shape (`ZooError.wire`), and the zoo's HTTP client rebuilds the very class that was raised
(`error_from_response`, as huggingface_hub's `hf_raise_for_status` does). No status is ever chosen by reading a
message.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar


class ZooError(Exception):
    """A mistake in the user's input or environment, with a message fit to show as is.

    `details` ride along in the JSON answer (e.g. the close matches of an unknown name)."""

    status: ClassVar[int] = 400
    code: ClassVar[str | None] = None

    def __init__(self, message: str = "", **details: Any):
        super().__init__(message)
        self.details = details

    @property
    def message(self) -> str:
        return str(self)

    def wire(self) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(status, headers, JSON body): the one shape every error of the server takes. The body's `error` is the
        message (huggingface_hub shows it), `type` the class the zoo's client rebuilds, `code` the Hub's error code
        when the class has one (huggingface_hub picks its exception by it), else the class name."""
        code = self.code or type(self).__name__
        headers = {"X-Error-Code": code, "X-Error-Message": ascii_header(self.message)}
        body = {**self.details, "error": self.message, "type": type(self).__name__, "code": code,
                "status": self.status}
        return self.status, headers, body

    @classmethod
    def from_wire(cls, message: str, status: int, details: Mapping[str, Any]) -> ZooError:
        """The error as the server raised it, rebuilt from its answer (its constructor may want other arguments)."""
        error = cls.__new__(cls)
        ZooError.__init__(error, message, **details)
        if status != cls.status:  # e.g. a not-found answered 401 to an anonymous caller
            error.status = status
        if "suggestions" in details:  # unknown names: the close matches the server offered
            error.suggestions = list(details["suggestions"] or [])
        return error


class UnknownNameError(ZooError, LookupError):
    """A name (backbone, strategy, reader, weight source, plugin, ...) that nothing registered."""

    status = 404

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name = kind, name
        self.known = sorted(known)
        self.suggestions = close_matches(name, self.known)
        message = f"unknown {kind} '{name}'"
        if self.suggestions:
            message += f"; did you mean {', '.join(self.suggestions)}?"
        elif self.known:
            shown = ", ".join(self.known[:12]) + (", ..." if len(self.known) > 12 else "")
            message += f"; known: {shown}"
        else:
            message += f"; no {kind} is registered"
        super().__init__(message, suggestions=self.suggestions)


class DuplicateNameError(ZooError):
    """Two plugins registered the same name for the same kind of thing."""


class WeightsError(ZooError):
    """Pretrained weights that cannot be found, fetched or fitted to the backbone."""


class DataError(ZooError):
    """A data set that is missing, corrupt or does not match what the recipe says."""


class MissingBaseError(ZooError):
    """`zoo reproduce`: the base a version was trained from cannot be found (not in its lineage, yanked, moved)."""


class DataMismatchError(DataError):
    """`zoo reproduce`: the data found does not match the fingerprints recorded at training time."""


# -- the registry -------------------------------------------------------------------------------------------------
class NotFoundError(ZooError, LookupError):
    """A model, version, alias or file that does not exist (or is private to someone else)."""

    status = 404


class ModelNotFoundError(NotFoundError):
    """No such model (or it is private to someone else). Close names the caller can see are suggested.

    Anonymous callers get 401, as on the Hub: the model may exist behind a token they did not send."""

    code = "RepoNotFound"

    def __init__(self, model_id: str, known: Iterable[str] = (), *, anonymous: bool = False):
        self.suggestions = close_matches(model_id, known)
        message = f"model '{model_id}' not found"
        if self.suggestions:
            message += f"; did you mean {', '.join(self.suggestions)}?"
        super().__init__(message, suggestions=self.suggestions)
        if anonymous:
            self.status = 401


class RevisionNotFoundError(NotFoundError):
    """The model exists, the version, alias or commit does not (or was yanked)."""

    code = "RevisionNotFound"


class UnknownAliasError(UnknownNameError, RevisionNotFoundError):
    """An alias the model does not have; the message suggests the close ones."""

    status = 404
    code = "RevisionNotFound"


class EntryNotFoundError(NotFoundError):
    """A file that the version does not have. `commit` names the version, which the Hub's clients cache."""

    code = "EntryNotFound"

    def __init__(self, message: str = "", commit: str | None = None):
        super().__init__(message, **({"commit": commit} if commit else {}))

    def wire(self) -> tuple[int, dict[str, str], dict[str, Any]]:
        status, headers, body = super().wire()
        if self.details.get("commit"):  # huggingface_hub remembers the miss under this commit
            headers["X-Repo-Commit"] = self.details["commit"]
        return status, headers, body


class AuthError(ZooError):
    """A missing, malformed or unknown token."""

    status = 401


class ForbiddenError(AuthError):
    """A valid token that does not allow this: it was made for another namespace."""

    status = 403


class ConflictError(ZooError):
    """Something that already exists, e.g. a model created twice."""

    status = 409


class StaleParentError(ConflictError):
    """A Hub commit built on a commit that is no longer `main` (the Hub's 412 Precondition Failed)."""

    status = 412


class CardError(ZooError):
    """A card that lacks what publication requires."""

    status = 422


class IntegrityError(ZooError):
    """A file whose bytes do not match its declared size or sha256."""


class ContentError(ZooError):
    """A file of a version that the registry will not take as it is: YAML with anchors or aliases (a few hundred
    bytes can expand to gigabytes), metrics that are not finite numbers."""

    status = 422


class UploadTooLargeError(IntegrityError):
    """A file larger than the server's upload limit."""

    status = 413


class RequestError(ZooError):
    """An HTTP request the server cannot take as sent (unknown path, wrong method, malformed parameters); the
    status is the one the web framework chose."""

    def __init__(self, message: str = "", status: int = 400, **details: Any):
        super().__init__(message, **details)
        self.status = status


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Names in `known` that look like `name`: close spellings first, then names sharing its prefix (of the part
    after the last `/`, so `acme/x` is not close to every model of acme)."""
    known = list(known)
    matches = difflib.get_close_matches(name, known, n=n, cutoff=0.6 if "/" not in name else 0.75)
    lowered = name.lower().rsplit("/", 1)[-1]
    for candidate in known:
        if len(matches) >= n:
            break
        if candidate not in matches and lowered and candidate.lower().rsplit("/", 1)[-1].startswith(lowered[:4]):
            matches.append(candidate)
    return matches


def ascii_header(text: str) -> str:
    """A message as an HTTP header value: printable ASCII on one line (anything else as `?`). A control character
    left in (a name sent as `%05` echoed in the message) made uvicorn drop the connection without an answer."""
    return "".join(c if " " <= c < "\x7f" else "?" for c in " ".join(text.split()))


def error_classes() -> dict[str, type[ZooError]]:
    """Every ZooError class by name (subclasses defined anywhere that is imported count too)."""
    found: dict[str, type[ZooError]] = {}
    todo = [ZooError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


BY_CODE: dict[str, type[ZooError]] = {"RepoNotFound": ModelNotFoundError, "RevisionNotFound": RevisionNotFoundError,
                                      "EntryNotFound": EntryNotFoundError}
BY_STATUS: dict[int, type[ZooError]] = {401: AuthError, 403: ForbiddenError, 404: NotFoundError, 409: ConflictError,
                                        413: UploadTooLargeError, 422: CardError}


def error_from_response(status: int, headers: Mapping[str, str], body: bytes | str | Mapping[str, Any] | None
                        ) -> ZooError:
    """The error a server answered, as its exact class: by the body's `type`, else by `X-Error-Code`, else by the
    status; the message is the body's `error`, else `X-Error-Message`, else the body's text."""
    data: Any = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    data = dict(data) if isinstance(data, Mapping) else {}
    lower = {k.lower(): v for k, v in headers.items()}
    message = data.get("error") if isinstance(data.get("error"), str) else None
    if message is None:
        message = lower.get("x-error-message") or (body.decode(errors="replace") if isinstance(body, bytes) else
                                                   body if isinstance(body, str) else "") or f"HTTP {status}"
    code = lower.get("x-error-code", "")
    cls = error_classes().get(str(data.get("type"))) or BY_CODE.get(code) or error_classes().get(code) or \
        BY_STATUS.get(status, ZooError)
    details = {k: v for k, v in data.items() if k not in ("error", "type", "code", "status")}
    return cls.from_wire(message, status, details)
