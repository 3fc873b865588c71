"""Type stubs of the native module; checked against it by mypy.stubtest in the test command."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Iterable, Optional, Union, final

from typing_extensions import Self

__all__ = [
    "__version__",
    "Client",
    "Keyspace",
    "AsyncClient",
    "AsyncKeyspace",
    "GetResult",
    "WriteResult",
    "Fetched",
    "Counter",
    "Set",
    "Flag",
    "Register",
    "Map",
    "AsyncCounter",
    "AsyncSet",
    "AsyncFlag",
    "AsyncRegister",
    "AsyncMap",
    "Context",
    "KeyspaceInfo",
    "MeridianError",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "SiblingLimit",
    "Unavailable",
    "Timeout",
    "ResolverTimeout",
    "ResourceExhausted",
    "UnresolvedSiblings",
    "Cancelled",
    "InternalError",
]

__version__: str

_Bytes = Union[bytes, str]
"""Keys and values: bytes, or str taken as UTF-8."""

_Resolver = Callable[[list[bytes]], _Bytes]
"""Merges a key's siblings (two or more) into one value."""

_AsyncResolver = Callable[[list[bytes]], Union[_Bytes, Awaitable[_Bytes]]]
_UpdateFn = Callable[[Optional[bytes]], Optional[_Bytes]]
_AsyncUpdateFn = Callable[[Optional[bytes]], Union[Optional[_Bytes], Awaitable[Optional[_Bytes]]]]

class MeridianError(Exception):
    """Every error Meridian raises; `.code` is the stable code string (e.g. "UNAVAILABLE")."""

    code: str

class InvalidArgument(MeridianError): ...
class NotFound(MeridianError): ...
class AlreadyExists(MeridianError): ...
class SiblingLimit(MeridianError): ...
class Unavailable(MeridianError): ...
class Timeout(MeridianError): ...
class ResolverTimeout(Timeout): ...
class ResourceExhausted(MeridianError): ...
class UnresolvedSiblings(MeridianError): ...
class Cancelled(MeridianError): ...
class InternalError(MeridianError): ...

@final
class Context:
    """What a read saw, to pass back on the next write of the key. Opaque."""

    @staticmethod
    def from_base64(s: str) -> Context: ...
    def to_base64(self) -> str: ...
    def __bytes__(self) -> bytes: ...
    def __bool__(self) -> bool: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class GetResult:
    """Every live sibling of a key and the context to write back with."""

    @property
    def siblings(self) -> list[bytes]: ...
    @property
    def value(self) -> Optional[bytes]: ...
    @property
    def context(self) -> Context: ...
    @property
    def found(self) -> bool: ...
    def __len__(self) -> int: ...

@final
class WriteResult:
    """The context after a write, and the siblings that survived it (empty if none)."""

    @property
    def siblings(self) -> list[bytes]: ...
    @property
    def context(self) -> Context: ...

@final
class Fetched:
    """A CRDT key's value (JSON form) and the context that scopes later removes."""

    @property
    def value(self) -> Any: ...
    @property
    def context(self) -> Context: ...

@final
class KeyspaceInfo:
    """A keyspace as the server describes it."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def replication(self) -> dict[str, int]: ...
    @property
    def max_value_bytes(self) -> int: ...
    @property
    def max_siblings(self) -> int: ...

_ContextArg = Optional[Union[Context, bytes]]

@final
class Counter:
    """One key of a `counter` keyspace: increments from every datacenter add up."""

    def increment(self, by: int = 1, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> int: ...
    def decrement(self, by: int = 1, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> int: ...
    def value(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> int: ...

@final
class Set:
    """One key of a `set` keyspace: add-wins, a remove takes away only the adds it saw."""

    def add(self, elements: Iterable[_Bytes], *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> list[Any]: ...
    def remove(
        self, elements: Iterable[_Bytes], context: _ContextArg = None, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None
    ) -> list[Any]: ...
    def members(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> list[Any]: ...
    def fetch(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> Fetched: ...

@final
class Flag:
    """One key of a `flag` keyspace: enable wins over a concurrent disable."""

    def enable(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> bool: ...
    def disable(self, context: _ContextArg = None, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> bool: ...
    def get(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> bool: ...

@final
class Register:
    """One key of a `register` or `mvregister` keyspace."""

    def assign(self, value: _Bytes, context: _ContextArg = None, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> Fetched: ...
    def fetch(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> Fetched: ...

@final
class Map:
    """One key of a `map` keyspace: named, typed fields, each a CRDT of its own."""

    def update(self, ops: list[dict[str, Any]], context: _ContextArg = None, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> Fetched: ...
    def fetch(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> Fetched: ...

@final
class AsyncCounter:
    """One key of a `counter` keyspace: increments from every datacenter add up."""

    def increment(self, by: int = 1, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> Awaitable[int]: ...
    def decrement(self, by: int = 1, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> Awaitable[int]: ...
    def value(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> Awaitable[int]: ...

@final
class AsyncSet:
    """One key of a `set` keyspace: add-wins, a remove takes away only the adds it saw."""

    def add(self, elements: Iterable[_Bytes], *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> Awaitable[list[Any]]: ...
    def remove(
        self, elements: Iterable[_Bytes], context: _ContextArg = None, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None
    ) -> Awaitable[list[Any]]: ...
    def members(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> Awaitable[list[Any]]: ...
    def fetch(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> Awaitable[Fetched]: ...

@final
class AsyncFlag:
    """One key of a `flag` keyspace: enable wins over a concurrent disable."""

    def enable(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> Awaitable[bool]: ...
    def disable(self, context: _ContextArg = None, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> Awaitable[bool]: ...
    def get(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> Awaitable[bool]: ...

@final
class AsyncRegister:
    """One key of a `register` or `mvregister` keyspace."""

    def assign(self, value: _Bytes, context: _ContextArg = None, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> Awaitable[Fetched]: ...
    def fetch(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> Awaitable[Fetched]: ...

@final
class AsyncMap:
    """One key of a `map` keyspace: named, typed fields, each a CRDT of its own."""

    def update(self, ops: list[dict[str, Any]], context: _ContextArg = None, *, consistency: Optional[str] = None, timeout: Optional[float] = None, request_id: Optional[bytes] = None) -> Awaitable[Fetched]: ...
    def fetch(self, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> Awaitable[Fetched]: ...

@final
class Keyspace:
    """A keyspace handle of a Client: its calls without the keyspace name."""

    @property
    def name(self) -> str: ...
    def get(self, key: _Bytes, *, consistency: Optional[str] = None, timeout: Optional[float] = None) -> GetResult: ...
    def put(
        self,
        key: _Bytes,
        value: _Bytes,
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> WriteResult: ...
    def delete(
        self,
        key: _Bytes,
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> WriteResult: ...
    def apply(
        self,
        key: _Bytes,
        ops: list[dict[str, Any]],
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> Fetched: ...
    def fetch(
        self,
        key: _Bytes,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Fetched: ...
    def get_resolved(
        self,
        key: _Bytes,
        resolver: Optional[_Resolver] = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Optional[bytes]: ...
    def update(
        self,
        key: _Bytes,
        fn_: _UpdateFn,
        resolver: Optional[_Resolver] = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> WriteResult: ...

@final
class Client:
    """A blocking client, safe to share between threads."""

    def __new__(
        cls,
        endpoints: Union[str, Sequence[str]],
        *,
        timeout: float = 5.0,
        connect_timeout: float = 3.0,
        retries: int = 2,
        local_dc: Optional[str] = None,
        failover_to_other_dcs: bool = False,
        routing: bool = True,
        resolver_timeout: float = 1.0,
    ) -> Client: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def counter(self, keyspace: str, key: _Bytes) -> Counter: ...
    def set(self, keyspace: str, key: _Bytes) -> Set: ...
    def flag(self, keyspace: str, key: _Bytes) -> Flag: ...
    def register(self, keyspace: str, key: _Bytes) -> Register: ...
    def map(self, keyspace: str, key: _Bytes) -> Map: ...
    def get(
        self, keyspace: str, key: _Bytes, *, consistency: Optional[str] = None, timeout: Optional[float] = None
    ) -> GetResult: ...
    def put(
        self,
        keyspace: str,
        key: _Bytes,
        value: _Bytes,
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> WriteResult: ...
    def delete(
        self,
        keyspace: str,
        key: _Bytes,
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> WriteResult: ...
    def apply(
        self,
        keyspace: str,
        key: _Bytes,
        ops: list[dict[str, Any]],
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> Fetched: ...
    def fetch(
        self,
        keyspace: str,
        key: _Bytes,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Fetched: ...
    def get_resolved(
        self,
        keyspace: str,
        key: _Bytes,
        resolver: Optional[_Resolver] = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Optional[bytes]: ...
    def update(
        self,
        keyspace: str,
        key: _Bytes,
        fn_: _UpdateFn,
        resolver: Optional[_Resolver] = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> WriteResult: ...
    def keyspace(
        self,
        name: str,
        *,
        resolver: Optional[_Resolver] = None,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Keyspace: ...
    def set_resolver(self, keyspace: str, resolver: Optional[_Resolver]) -> None: ...
    def create_keyspace(
        self,
        name: str,
        *,
        kind: str = "siblings",
        replication: Optional[dict[str, int]] = None,
        read_consistency: Optional[str] = None,
        write_consistency: Optional[str] = None,
        max_value_bytes: Optional[int] = None,
        max_siblings: Optional[int] = None,
    ) -> KeyspaceInfo: ...
    def list_keyspaces(self) -> list[KeyspaceInfo]: ...

@final
class AsyncKeyspace:
    """A keyspace handle of an AsyncClient."""

    @property
    def name(self) -> str: ...
    def get(
        self, key: _Bytes, *, consistency: Optional[str] = None, timeout: Optional[float] = None
    ) -> Awaitable[GetResult]: ...
    def put(
        self,
        key: _Bytes,
        value: _Bytes,
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> Awaitable[WriteResult]: ...
    def delete(
        self,
        key: _Bytes,
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> Awaitable[WriteResult]: ...
    def apply(
        self,
        key: _Bytes,
        ops: list[dict[str, Any]],
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> Awaitable[Fetched]: ...
    def fetch(
        self,
        key: _Bytes,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Awaitable[Fetched]: ...
    def get_resolved(
        self,
        key: _Bytes,
        resolver: Optional[_AsyncResolver] = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Awaitable[Optional[bytes]]: ...
    def update(
        self,
        key: _Bytes,
        fn_: _AsyncUpdateFn,
        resolver: Optional[_AsyncResolver] = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Awaitable[WriteResult]: ...

@final
class AsyncClient:
    """An asyncio client; create with `await AsyncClient.connect(...)`."""

    @staticmethod
    def connect(
        endpoints: Union[str, Sequence[str]],
        *,
        timeout: float = 5.0,
        connect_timeout: float = 3.0,
        retries: int = 2,
        local_dc: Optional[str] = None,
        failover_to_other_dcs: bool = False,
        routing: bool = True,
        resolver_timeout: float = 1.0,
    ) -> Awaitable[AsyncClient]: ...
    def __aenter__(self) -> Awaitable[Self]: ...
    def __aexit__(self, *_exc: object) -> Awaitable[bool]: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> Awaitable[None]: ...
    def counter(self, keyspace: str, key: _Bytes) -> AsyncCounter: ...
    def set(self, keyspace: str, key: _Bytes) -> AsyncSet: ...
    def flag(self, keyspace: str, key: _Bytes) -> AsyncFlag: ...
    def register(self, keyspace: str, key: _Bytes) -> AsyncRegister: ...
    def map(self, keyspace: str, key: _Bytes) -> AsyncMap: ...
    def get(
        self, keyspace: str, key: _Bytes, *, consistency: Optional[str] = None, timeout: Optional[float] = None
    ) -> Awaitable[GetResult]: ...
    def put(
        self,
        keyspace: str,
        key: _Bytes,
        value: _Bytes,
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> Awaitable[WriteResult]: ...
    def delete(
        self,
        keyspace: str,
        key: _Bytes,
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> Awaitable[WriteResult]: ...
    def apply(
        self,
        keyspace: str,
        key: _Bytes,
        ops: list[dict[str, Any]],
        context: _ContextArg = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        request_id: Optional[bytes] = None,
    ) -> Awaitable[Fetched]: ...
    def fetch(
        self,
        keyspace: str,
        key: _Bytes,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Awaitable[Fetched]: ...
    def get_resolved(
        self,
        keyspace: str,
        key: _Bytes,
        resolver: Optional[_AsyncResolver] = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Awaitable[Optional[bytes]]: ...
    def update(
        self,
        keyspace: str,
        key: _Bytes,
        fn_: _AsyncUpdateFn,
        resolver: Optional[_AsyncResolver] = None,
        *,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Awaitable[WriteResult]: ...
    def keyspace(
        self,
        name: str,
        *,
        resolver: Optional[_AsyncResolver] = None,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> AsyncKeyspace: ...
    def set_resolver(self, keyspace: str, resolver: Optional[_AsyncResolver]) -> None: ...
    def create_keyspace(
        self,
        name: str,
        *,
        kind: str = "siblings",
        replication: Optional[dict[str, int]] = None,
        read_consistency: Optional[str] = None,
        write_consistency: Optional[str] = None,
        max_value_bytes: Optional[int] = None,
        max_siblings: Optional[int] = None,
    ) -> Awaitable[KeyspaceInfo]: ...
    def list_keyspaces(self) -> Awaitable[list[KeyspaceInfo]]: ...
