"""The static scanner: what it reads from handler files and where it reports problems."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cli.scan import ScanResult, module_name, scan
from core.errors import ConfigError


def write(root: Path, rel: str, source: str) -> Path:
    """Write a dedented handler file at ``handlers/<rel>``."""
    file = root / "handlers" / rel
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return file


def scan_one(root: Path, source: str, rel: str = "demo/ws.demo.py") -> ScanResult:
    write(root, rel, source)
    return scan(root)


def only_error(result: ScanResult) -> ConfigError:
    assert len(result.errors) == 1, [str(e) for e in result.errors]
    return result.errors[0]


def where(error: ConfigError) -> tuple[str | None, int, int]:
    return error.file, error.line, error.col


# -- accepted forms ----------------------------------------------------------------------


def test_keyword_form_gathers_everything(tmp_path: Path) -> None:
    """A `WebSocketHandler(...)` call gives path, middleware, hooks, events and location."""
    result = scan_one(
        tmp_path,
        """
        from core.ws import Event, WebSocketHandler

        config = WebSocketHandler(
            path="/ws/comms/chat-rooms/:room",
            middleware=[auth_middleware(), participant_middleware(role="x")],
            on_close=on_close,
            on_connect=on_connect,
            events=[Event("ping", on_ping), Event("chat.message", on_chat, model=ChatIn)],
        )
        """,
        rel="comms/ws.chat-rooms.py",
    )
    assert result.errors == [] and result.warnings == []
    [handler] = result.handlers
    assert handler.path == "/ws/comms/chat-rooms/:room"
    assert handler.file == "handlers/comms/ws.chat-rooms.py"
    assert handler.module == "wsgen_handlers.comms.chat_rooms"
    assert handler.middleware == ("auth_middleware()", 'participant_middleware(role="x")')
    assert handler.hooks == ("on_connect", "on_close")
    assert handler.events == ("chat.message", "ping")
    assert (handler.line, handler.col) == (3, 1)
    assert (handler.path_line, handler.path_col) == (4, 10)


def test_positional_path(tmp_path: Path) -> None:
    """The path may be the first positional argument."""
    result = scan_one(tmp_path, 'config = WebSocketHandler("/ws/user", on_connect=hello)\n')
    [handler] = result.handlers
    assert (handler.path, handler.hooks) == ("/ws/user", ("on_connect",))


def test_annotated_assignment(tmp_path: Path) -> None:
    """`config: WebSocketHandler = WebSocketHandler(...)` is read like a plain assignment."""
    result = scan_one(
        tmp_path,
        """
        config: WebSocketHandler  # a bare annotation binds nothing
        config: WebSocketHandler = WebSocketHandler(path="/ws/user")
        """,
    )
    assert result.errors == []
    assert [(h.path, h.line) for h in result.handlers] == [("/ws/user", 2)]


def test_dict_literal(tmp_path: Path) -> None:
    """A dict literal with string keys is accepted."""
    result = scan_one(
        tmp_path,
        """
        config = {
            "path": "/ws/user",
            "middleware": [auth_middleware()],
            "on_message": on_message,
            "events": [Event(name="ping", handler=on_ping)],
        }
        """,
    )
    assert result.errors == []
    [handler] = result.handlers
    assert handler.middleware == ("auth_middleware()",)
    assert handler.hooks == ("on_message",)
    assert handler.events == ("ping",)


def test_attribute_callee(tmp_path: Path) -> None:
    """`ws.WebSocketHandler(...)` and `ws.Event(...)` are recognised."""
    result = scan_one(
        tmp_path,
        'config = ws.WebSocketHandler(path="/ws/a", events=[ws.Event("ping", on_ping)])\n',
    )
    assert [(h.path, h.events) for h in result.handlers] == [("/ws/a", ("ping",))]


def test_brace_params_and_concatenated_literal(tmp_path: Path) -> None:
    """`{name}` parameters and implicit concatenation of literals are accepted."""
    result = scan_one(tmp_path, 'config = WebSocketHandler(path="/ws/rooms/" "{room}")\n')
    assert result.errors == []
    assert [h.path for h in result.handlers] == ["/ws/rooms/{room}"]


def test_hooks_lambda_none_and_missing(tmp_path: Path) -> None:
    """A lambda hook is recorded by its keyword; `None` and absent hooks are not."""
    result = scan_one(
        tmp_path,
        """
        config = WebSocketHandler(
            path="/ws/a",
            on_error=lambda ctx, ws, error: None,
            on_close=None,
        )
        """,
    )
    assert [h.hooks for h in result.handlers] == [("on_error",)]


def test_config_outside_module_level_is_ignored(tmp_path: Path) -> None:
    """Assignments to `config` inside functions and classes are other scopes."""
    result = scan_one(
        tmp_path,
        """
        def build():
            config = None
            return config

        class Settings:
            config = {}

        config = WebSocketHandler(path="/ws/a")
        """,
    )
    assert result.errors == []
    assert [h.line for h in result.handlers] == [8]


def test_starred_middleware_and_unreadable_lists_warn(tmp_path: Path) -> None:
    """Middleware keeps `*spread` entries; non-list middleware/events only warn."""
    result = scan_one(tmp_path, 'config = WebSocketHandler("/ws/a", middleware=[*BASE, extra])\n')
    assert [h.middleware for h in result.handlers] == [("*BASE", "extra")]
    result = scan_one(tmp_path, 'config = WebSocketHandler("/ws/a", middleware=M, events=E)\n')
    assert result.errors == [] and result.handlers[0].middleware == ()
    assert result.warnings == [
        "handlers/demo/ws.demo.py:1:47: `middleware` is not a list literal; "
        "its entries are not listed",
        "handlers/demo/ws.demo.py:1:57: `events` is not a list literal; "
        "its event names are not listed",
    ]


def test_non_literal_event_name_warns(tmp_path: Path) -> None:
    """A non-literal event name and a non-Event entry are warnings, left out of the list."""
    result = scan_one(
        tmp_path,
        """
        config = WebSocketHandler(
            path="/ws/a",
            events=[Event("ping", on_ping), Event(NAME, on_x), other_event],
        )
        """,
    )
    assert result.errors == []
    assert result.handlers[0].events == ("ping",)
    assert result.warnings == [
        "handlers/demo/ws.demo.py:3:43: event name is not a string literal; left out of the list",
        "handlers/demo/ws.demo.py:3:56: not an `Event(...)` call; left out of the event list",
    ]


def test_module_names() -> None:
    """Synthetic module names replace every non-identifier character with `_`."""
    assert module_name("handlers/comms/ws.chat-rooms.py") == "wsgen_handlers.comms.chat_rooms"
    assert module_name("handlers/my-app/ws.a.b.py") == "wsgen_handlers.my_app.a_b"
    assert module_name("handlers/user/ws.user.py") == "wsgen_handlers.user.user"


def test_handlers_sorted_by_path(tmp_path: Path) -> None:
    """Handlers come back sorted by path, whatever the file names."""
    write(tmp_path, "a/ws.z.py", 'config = WebSocketHandler(path="/ws/b")\n')
    write(tmp_path, "b/ws.a.py", 'config = WebSocketHandler(path="/ws/a")\n')
    result = scan(tmp_path)
    assert [h.path for h in result.handlers] == ["/ws/a", "/ws/b"]


def test_scan_never_runs_the_file(tmp_path: Path) -> None:
    """A file with top-level side effects is read, not executed."""
    marker = tmp_path / "marker"
    result = scan_one(
        tmp_path,
        f"""
        from pathlib import Path

        Path({str(marker)!r}).write_text("ran")
        raise SystemExit(3)

        config = WebSocketHandler(path="/ws/a")
        """,
    )
    assert result.errors == []
    assert [h.path for h in result.handlers] == ["/ws/a"]
    assert not marker.exists()


# -- fatal errors, with their location -----------------------------------------------------


def test_syntax_error(tmp_path: Path) -> None:
    """A syntax error is reported where the parser points, with no traceback."""
    error = only_error(scan_one(tmp_path, 'config = WebSocketHandler(path="/ws/a"\n\nx = 1\n'))
    assert where(error) == ("handlers/demo/ws.demo.py", 1, 26)
    assert error.message.startswith("syntax error:")


def test_no_config(tmp_path: Path) -> None:
    """A file without a module-level `config` fails at 1:1."""
    error = only_error(scan_one(tmp_path, "x = 1\n"))
    assert where(error) == ("handlers/demo/ws.demo.py", 1, 1)
    assert "no module-level `config`" in error.message


def test_config_assigned_twice(tmp_path: Path) -> None:
    """A second module-level assignment is reported where it is, naming the first."""
    error = only_error(
        scan_one(
            tmp_path,
            """
            config = WebSocketHandler(path="/ws/a")
            if DEBUG:
                config = WebSocketHandler(path="/ws/b")
            """,
        )
    )
    assert where(error) == ("handlers/demo/ws.demo.py", 3, 5)
    assert "more than once" in error.message and "line 1" in error.message


@pytest.mark.parametrize(
    ("source", "line", "col"),
    [
        pytest.param("config += other\n", 1, 1, id="augmented"),
        pytest.param("config, other = a, b\n", 1, 1, id="unpacked"),
    ],
)
def test_config_not_plainly_assigned(tmp_path: Path, source: str, line: int, col: int) -> None:
    """`config` bound by unpacking or `+=` cannot be read."""
    error = only_error(scan_one(tmp_path, source))
    assert where(error)[1:] == (line, col)


def test_config_not_a_handler_call(tmp_path: Path) -> None:
    """A `config` built by another call is refused at its value."""
    error = only_error(scan_one(tmp_path, 'config = make_handler("/ws/a")\n'))
    assert where(error) == ("handlers/demo/ws.demo.py", 1, 10)
    assert "WebSocketHandler(...)" in error.message and "dict literal" in error.message


def test_missing_path(tmp_path: Path) -> None:
    """A config without `path` is reported at the call."""
    error = only_error(scan_one(tmp_path, "x = 1\nconfig = WebSocketHandler(on_connect=c)\n"))
    assert where(error) == ("handlers/demo/ws.demo.py", 2, 10)
    assert "no `path`" in error.message


@pytest.mark.parametrize(
    ("value", "col"),
    [
        pytest.param("PATH", 32, id="variable"),
        pytest.param('f"/ws/{name}"', 32, id="f-string"),
        pytest.param('"/ws/" + name', 32, id="expression"),
        pytest.param('b"/ws/a"', 32, id="bytes"),
    ],
)
def test_path_not_a_string_literal(tmp_path: Path, value: str, col: int) -> None:
    """A non-literal path is refused at its value: the scanner cannot run the file."""
    error = only_error(scan_one(tmp_path, f"config = WebSocketHandler(path={value})\n"))
    assert where(error) == ("handlers/demo/ws.demo.py", 1, col)
    assert "must be a string literal" in error.message
    assert "without running" in error.message


@pytest.mark.parametrize(
    ("literal", "col"),
    [
        pytest.param('"/ws/a b"', 38, id="bad-char"),
        pytest.param('"ws/a"', 33, id="no-leading-slash"),
        pytest.param('"/ws//a"', 37, id="empty-segment"),
        pytest.param('r"/ws/:1x"', 38, id="prefixed-literal"),
        pytest.param('"/ws/" "a b"', 41, id="concatenated"),
    ],
)
def test_invalid_path_points_at_the_character(tmp_path: Path, literal: str, col: int) -> None:
    """An invalid path is reported at the offending character inside the literal."""
    error = only_error(scan_one(tmp_path, f"config = WebSocketHandler(path={literal})\n"))
    assert where(error) == ("handlers/demo/ws.demo.py", 1, col)
    assert error.message.startswith("path ")


def test_unknown_keyword(tmp_path: Path) -> None:
    """An unknown argument is reported at its keyword, listing the allowed ones."""
    error = only_error(
        scan_one(tmp_path, 'config = WebSocketHandler(path="/ws/a", on_open=on_open)\n')
    )
    assert where(error) == ("handlers/demo/ws.demo.py", 1, 41)
    assert "`on_open`" in error.message
    assert "path, middleware, on_connect, on_message, on_close, on_error, events" in error.message


def test_unknown_dict_key_and_star_args(tmp_path: Path) -> None:
    """Unknown dict keys and `**kwargs` are refused where they are written."""
    error = only_error(scan_one(tmp_path, 'config = {"path": "/ws/a", "paht": 1}\n'))
    assert where(error)[1:] == (1, 28)
    error = only_error(scan_one(tmp_path, 'config = WebSocketHandler(path="/ws/a", **extra)\n'))
    assert where(error)[1:] == (1, 41)


def test_duplicate_event(tmp_path: Path) -> None:
    """An event declared twice is refused at the second one (the runtime would refuse it)."""
    error = only_error(
        scan_one(
            tmp_path, 'config = WebSocketHandler("/ws/a", events=[Event("p", f), Event("p", g)])\n'
        )
    )
    assert where(error)[1:] == (1, 65)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("/ws/a/:x", "/ws/a/:y", id="param-names"),
        pytest.param(":x", "{x}", id="param-syntax"),
        pytest.param("/ws/a", "/ws/a", id="same-path"),
    ],
)
def test_colliding_paths(tmp_path: Path, first: str, second: str) -> None:
    """Two paths of one shape collide; the second file is blamed at its path literal."""
    first = first if first.startswith("/") else f"/ws/a/{first}"
    second = second if second.startswith("/") else f"/ws/a/{second}"
    write(tmp_path, "a/ws.first.py", f'config = WebSocketHandler(path="{first}")\n')
    write(tmp_path, "b/ws.second.py", f'config = WebSocketHandler(\n    "{second}",\n)\n')
    result = scan(tmp_path)
    error = only_error(result)
    assert where(error) == ("handlers/b/ws.second.py", 2, 5)
    assert "handlers/a/ws.first.py" in error.message and repr(first) in error.message
    assert [h.file for h in result.handlers] == ["handlers/a/ws.first.py"]


def test_module_name_collision(tmp_path: Path) -> None:
    """Two files that would load under one synthetic module name are refused."""
    write(tmp_path, "a-b/ws.x.py", 'config = WebSocketHandler(path="/ws/one")\n')
    write(tmp_path, "a_b/ws.x.py", 'config = WebSocketHandler(path="/ws/two")\n')
    error = only_error(scan(tmp_path))
    assert where(error) == ("handlers/a_b/ws.x.py", 1, 1)
    assert "wsgen_handlers.a_b.x" in error.message and "handlers/a-b/ws.x.py" in error.message


def test_errors_collected_from_all_files(tmp_path: Path) -> None:
    """Every file's problems are reported in one run, sorted by file and position."""
    write(tmp_path, "a/ws.ok.py", 'config = WebSocketHandler(path="/ws/ok")\n')
    write(tmp_path, "b/ws.broken.py", "config = (\n")
    write(tmp_path, "c/ws.empty.py", "\n")
    write(tmp_path, "d/ws.var.py", "config = WebSocketHandler(path=P, on_open=f)\n")
    result = scan(tmp_path)
    assert [where(e) for e in result.errors] == [
        ("handlers/b/ws.broken.py", 1, 10),
        ("handlers/c/ws.empty.py", 1, 1),
        ("handlers/d/ws.var.py", 1, 32),
        ("handlers/d/ws.var.py", 1, 35),
    ]
    assert [h.path for h in result.handlers] == ["/ws/ok"]
    assert str(result.errors[1]).startswith("handlers/c/ws.empty.py:1:1: no module-level")


def test_no_handlers_directory(tmp_path: Path) -> None:
    """A root without handlers/ is an error, not an empty project."""
    error = only_error(scan(tmp_path))
    assert error.file is None and "no handlers/ directory" in error.message
