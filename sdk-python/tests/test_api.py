"""The public surface: documented, and typed by stubs that match the compiled module (the
test command also runs mypy.stubtest)."""

import inspect
from pathlib import Path

import meridian


def test_every_public_item_has_a_docstring():
    missing = []
    for name in meridian.__all__:
        if name.startswith("__"):
            continue
        item = getattr(meridian, name)
        if not (item.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(item) and not issubclass(item, BaseException):
            for attr, member in vars(item).items():
                if attr.startswith("_"):
                    continue
                if not (getattr(member, "__doc__", None) or "").strip():
                    missing.append(f"{name}.{attr}")
    assert missing == []


def test_package_ships_its_type_information():
    package = Path(meridian.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_meridian.pyi").exists()


def test_every_error_carries_a_code_and_shares_one_base():
    for name in meridian.__all__:
        item = getattr(meridian, name)
        if inspect.isclass(item) and issubclass(item, BaseException):
            assert issubclass(item, meridian.MeridianError), name
    assert issubclass(meridian.ResolverTimeout, meridian.Timeout)
