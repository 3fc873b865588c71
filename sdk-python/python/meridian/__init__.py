"""Python client for Meridian, a geo-replicated key-value store.

A thin binding over the Rust SDK: routing, retries, deadlines and conflict resolution
happen there, identically for every language.

    import meridian

    with meridian.Client("http://127.0.0.1:7070") as client:
        client.put("demo", "greeting", b"hello")
        print(client.get("demo", "greeting").value)
"""

from meridian._meridian import (
    AlreadyExists,
    AsyncClient,
    AsyncKeyspace,
    Cancelled,
    Client,
    Context,
    Fetched,
    GetResult,
    InternalError,
    InvalidArgument,
    Keyspace,
    KeyspaceInfo,
    MeridianError,
    NotFound,
    ResolverTimeout,
    ResourceExhausted,
    SiblingLimit,
    Timeout,
    Unavailable,
    UnresolvedSiblings,
    WriteResult,
    Counter,
    Set,
    Flag,
    Register,
    Map,
    AsyncCounter,
    AsyncSet,
    AsyncFlag,
    AsyncRegister,
    AsyncMap,
    __version__,
)

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "AsyncKeyspace",
    "Cancelled",
    "Client",
    "Context",
    "Fetched",
    "GetResult",
    "InternalError",
    "InvalidArgument",
    "Keyspace",
    "KeyspaceInfo",
    "MeridianError",
    "NotFound",
    "ResolverTimeout",
    "ResourceExhausted",
    "SiblingLimit",
    "Timeout",
    "Unavailable",
    "UnresolvedSiblings",
    "WriteResult",
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
    "__version__",
]
