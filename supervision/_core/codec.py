"""The snapshot codec: JSON of pyrsistent structures, and nothing that runs code.

A durable or shared store holds snapshots as bytes. Pickle would let whoever can
write to the store (another host, a restored backup) run code in every root that
reads it, so the codec is JSON with a few one-key tagged objects for the types
JSON lacks. Decoding only ever builds the plain immutable types that ``ctx.save``
accepts; it never imports or calls anything named by the data.

=============================  ===========================================
value                          JSON
=============================  ===========================================
None, bool, int, str           themselves
float                          itself; ``{"$f": "nan" | "inf" | "-inf"}``
bytes                          ``{"$b": "<base64>"}``
PVector                        ``[...]``
tuple                          ``{"$t": [...]}``
PMap with str keys, none       ``{...}``
starting with ``$``
any other PMap                 ``{"$m": [[key, value], ...]}``
PSet / frozenset               ``{"$s": [...]}`` / ``{"$fs": [...]}``
PBag / PList / PDeque          ``{"$bag": [...]}`` / ``{"$l": [...]}`` /
                               ``{"$dq": [...], "maxlen": n | null}``
=============================  ===========================================

``PClass`` and ``PRecord`` values are refused: decoding them would mean importing a
class named by the store. Save ``value.serialize()`` (a PMap) instead.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from pyrsistent import PBag, PClass, PDeque, PList, PMap, PRecord, PSet, PVector, b, pdeque, plist, pmap, pset, pvector

# ``plist()`` is an instance of a private class, not of ``PList``.
_PLISTS: tuple[type[Any], ...] = (PList, type(plist()))

FORMAT = 1
"""Version of the envelope ``{"format": 1, "state_version": n, "value": ...}``."""


class CodecError(ValueError):
    """A value the codec cannot encode, or bytes that are not a snapshot it wrote."""


def _encode(value: Any) -> Any:
    # Order matters: bool before int (bool is an int), PRecord before PMap
    # (a PRecord is a PMap), PClass before anything generic.
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$f": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (PRecord, PClass)):
        raise CodecError(
            f"a {type(value).__name__} cannot be stored durably: decoding it would import a class "
            f"named by the store; save value.serialize() (a PMap) instead"
        )
    if isinstance(value, PVector):
        return [_encode(item) for item in value]
    if isinstance(value, tuple):
        return {"$t": [_encode(item) for item in value]}
    if isinstance(value, PMap):
        return _encode_map(value)
    if isinstance(value, PSet):
        return {"$s": [_encode(item) for item in value]}
    if isinstance(value, frozenset):
        return {"$fs": [_encode(item) for item in value]}
    if isinstance(value, PBag):
        return {"$bag": [_encode(item) for item in value]}
    if isinstance(value, _PLISTS):
        return {"$l": [_encode(item) for item in value]}
    if isinstance(value, PDeque):
        return {"$dq": [_encode(item) for item in value], "maxlen": value.maxlen}
    # What ctx.save refuses (check_immutable's words): a store that encodes is the check.
    raise TypeError(
        f"a snapshot must be immutable plain data (pyrsistent, tuple, frozenset, "
        f"str, int, float, bool, None, bytes); got {type(value).__name__}: {value!r}"
    )


_PLAIN = frozenset({str, int, bool, type(None)})


def _encode_map(value: PMap[Any, Any]) -> Any:
    # The common snapshot: a map of strings to plain values. Encoded in one pass
    # without a call per item, since every ctx.save pays for it on the event loop.
    plain: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str or key.startswith("$"):
            return {"$m": [[_encode(key), _encode(item)] for key, item in value.items()]}
        plain[key] = item if type(item) in _PLAIN else _encode(item)
    return plain


def _decode(data: Any) -> Any:
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return pvector(_decode(item) for item in data)
    if isinstance(data, dict):
        if len(data) in (1, 2):
            tag = next(iter(data))
            if isinstance(tag, str) and tag.startswith("$"):
                return _decode_tagged(tag, data)
        return pmap({key: _decode(item) for key, item in data.items()})
    raise CodecError(f"not a snapshot: unexpected {type(data).__name__}")


def _decode_tagged(tag: str, data: dict[str, Any]) -> Any:
    body = data[tag]
    if tag == "$dq":
        maxlen = data.get("maxlen")
        if not (maxlen is None or isinstance(maxlen, int)):
            raise CodecError("not a snapshot: bad $dq maxlen")
        return pdeque((_decode(item) for item in _items(body)), maxlen)
    if len(data) != 1:
        raise CodecError(f"not a snapshot: tagged object {tag} has extra keys")
    if tag == "$f":
        if body not in ("nan", "inf", "-inf"):
            raise CodecError("not a snapshot: bad $f")
        return float(body)
    if tag == "$b":
        if not isinstance(body, str):
            raise CodecError("not a snapshot: bad $b")
        return base64.b64decode(body, validate=True)
    if tag == "$t":
        return tuple(_decode(item) for item in _items(body))
    if tag == "$m":
        pairs = _items(body)
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
            raise CodecError("not a snapshot: bad $m")
        return pmap({_decode(key): _decode(item) for key, item in pairs})
    if tag == "$s":
        return pset(_decode(item) for item in _items(body))
    if tag == "$fs":
        return frozenset(_decode(item) for item in _items(body))
    if tag == "$bag":
        return b(*(_decode(item) for item in _items(body)))
    if tag == "$l":
        return plist([_decode(item) for item in _items(body)])
    raise CodecError(f"not a snapshot: unknown tag {tag}")


def _items(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise CodecError("not a snapshot: a tagged collection must hold a list")
    return body


_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def encode(value: Any, state_version: int = 0) -> bytes:
    """The bytes a store keeps for ``value`` saved under ``state_version``.

    >>> encode(pmap({"n": 1}))
    b'{"format":1,"state_version":0,"value":{"n":1}}'
    """
    body = _encode_map(value) if type(value) is PMap else _encode(value)
    # The envelope by hand: {"format": 1, "state_version": n, "value": ...}, compact.
    return f'{{"format":{FORMAT},"state_version":{int(state_version)},"value":{_dumps(body)}}}'.encode()


def decode(data: bytes) -> tuple[Any, int]:
    """``(value, state_version)`` from bytes made by :func:`encode`; ``CodecError`` otherwise."""
    try:
        envelope = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CodecError(f"not a snapshot: {exc}") from exc
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        raise CodecError("not a snapshot written by this codec (format field missing or unknown)")
    state_version = envelope.get("state_version")
    if not isinstance(state_version, int) or isinstance(state_version, bool) or "value" not in envelope:
        raise CodecError("not a snapshot: bad envelope")
    try:
        return _decode(envelope["value"]), state_version
    except (TypeError, ValueError, RecursionError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"not a snapshot: {exc}") from exc
