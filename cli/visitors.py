"""Read the module-level ``config`` of one handler file from its syntax tree.

The handler file is never imported or run: everything is read from literals,
so that a broken or side-effecting handler cannot break ``wsgen generate``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m
from libcst.metadata import PositionProvider

from core.errors import ConfigError, InvalidPath
from core.routing import parse_path

HOOKS = ("on_connect", "on_message", "on_close", "on_error")
"""Hook keywords, in the order the registry lists them."""
FIELDS = ("path", "middleware", *HOOKS, "events")
"""Every argument ``WebSocketHandler`` accepts."""

_CONFIG = m.Name("config")
_HANDLER_CALL = m.Call(
    func=m.Name("WebSocketHandler") | m.Attribute(attr=m.Name("WebSocketHandler"))
)
_EVENT_CALL = m.Call(func=m.Name("Event") | m.Attribute(attr=m.Name("Event")))
_NONE = m.Name("None")


@dataclass(slots=True, frozen=True)
class HandlerConfig:
    """What a handler file's ``config`` declares; positions are 1-based."""

    path: str
    middleware: tuple[str, ...]
    hooks: tuple[str, ...]
    events: tuple[str, ...]
    line: int
    col: int
    path_line: int
    path_col: int


@dataclass(slots=True, frozen=True)
class _Assignment:
    target: cst.Name
    value: cst.BaseExpression | None  # None: a form the scanner cannot read (x += ..., a, b = ...)


class GatherHandlerConfigVisitor(cst.CSTVisitor):
    """Gathers the module-level ``config`` of one handler file.

    Run it through ``MetadataWrapper(module).visit(visitor)``. Afterwards:

    Attributes:
        config: the ``HandlerConfig`` read, or ``None`` when the file has a fatal problem.
        errors: fatal problems, each a ``ConfigError`` located in ``file``.
        warnings: non-fatal problems, formatted ``file:line:col: message``.
    """

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file
        self.config: HandlerConfig | None = None
        self.errors: list[ConfigError] = []
        self.warnings: list[str] = []
        self._module = cst.Module(body=[])
        self._assignments: list[_Assignment] = []

    # -- gathering: module-level assignments to `config` -------------------------------

    def visit_Module(self, node: cst.Module) -> None:
        self._module = node

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # a `config` in a function or class body is not the module's

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if m.matches(target.target, _CONFIG):
                self._assignments.append(
                    _Assignment(cst.ensure_type(target.target, cst.Name), node.value)
                )
            else:  # `config, other = ...`: bound, but not readable
                for name in _unpacked_names(target.target):
                    self._assignments.append(_Assignment(name, None))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None and m.matches(node.target, _CONFIG):
            self._assignments.append(
                _Assignment(cst.ensure_type(node.target, cst.Name), node.value)
            )

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if m.matches(node.target, _CONFIG):
            self._assignments.append(_Assignment(cst.ensure_type(node.target, cst.Name), None))

    def leave_Module(self, original_node: cst.Module) -> None:
        try:
            self.config = self._read()
        except ConfigError as error:
            self.errors.append(error)

    # -- reading ----------------------------------------------------------------------

    def _read(self) -> HandlerConfig | None:
        if not self._assignments:
            raise ConfigError(
                "no module-level `config`; a handler file must export "
                '`config = WebSocketHandler(path="/ws/...", ...)`',
                self.file,
            )
        first, *others = self._assignments
        if others:
            line, _ = self._position(first.target)
            raise self._error(
                others[0].target,
                f"`config` is assigned more than once at module level (first at line {line}); "
                "assign it once so that the served route is known without running the file",
            )
        if first.value is None:
            raise self._error(first.target, "`config` must be assigned with a plain `config = ...`")
        fields = self._fields(first.value)
        path_node = fields.get("path")
        if path_node is None:
            raise self._error(
                first.value, 'config has no `path`; add path="/ws/..." to WebSocketHandler(...)'
            )
        path = self._path(path_node)
        hooks = tuple(h for h in HOOKS if h in fields and not m.matches(fields[h], _NONE))
        middleware = self._middleware(fields.get("middleware"))
        events = self._events(fields.get("events"))
        if path is None:
            return None
        line, col = self._position(first.target)
        path_line, path_col = self._position(path_node)
        return HandlerConfig(path, middleware, hooks, events, line, col, path_line, path_col)

    def _fields(self, value: cst.BaseExpression) -> dict[str, cst.BaseExpression]:
        """Map each argument name of ``WebSocketHandler(...)`` or key of ``{...}`` to its value."""
        if m.matches(value, _HANDLER_CALL):
            return self._call_fields(cst.ensure_type(value, cst.Call))
        if isinstance(value, cst.Dict):
            return self._dict_fields(value)
        raise self._error(
            value,
            "`config` must be a `WebSocketHandler(...)` call or a dict literal, written out in "
            "the file: the scanner reads handler files without running them",
        )

    def _call_fields(self, call: cst.Call) -> dict[str, cst.BaseExpression]:
        fields: dict[str, cst.BaseExpression] = {}
        for index, arg in enumerate(call.args):
            if arg.star:
                raise self._error(
                    arg,
                    f"`{arg.star}` arguments cannot be read without running the file; "
                    "spell out the arguments of WebSocketHandler(...)",
                )
            if arg.keyword is None:
                if index == 0:
                    fields["path"] = arg.value
                else:
                    self.errors.append(
                        self._error(arg, "only `path` may be positional; pass the rest by keyword")
                    )
                continue
            self._add_field(
                fields, arg.keyword.value, arg.keyword, arg.value, "argument {} of WebSocketHandler"
            )
        return fields

    def _dict_fields(self, value: cst.Dict) -> dict[str, cst.BaseExpression]:
        fields: dict[str, cst.BaseExpression] = {}
        for element in value.elements:
            if not isinstance(element, cst.DictElement):
                raise self._error(
                    element, "`**` cannot be read without running the file; spell out the keys"
                )
            key = _literal_str(element.key)
            if key is None:
                self.errors.append(self._error(element.key, "config keys must be string literals"))
                continue
            self._add_field(fields, key, element.key, element.value, "key {} in the config dict")
        return fields

    def _add_field(
        self,
        fields: dict[str, cst.BaseExpression],
        name: str,
        name_node: cst.CSTNode,
        value: cst.BaseExpression,
        what: str,
    ) -> None:
        if name not in FIELDS:
            allowed = ", ".join(FIELDS)
            message = f"unknown {what.format(f'`{name}`')}; expected one of: {allowed}"
            self.errors.append(self._error(name_node, message))
        elif name in fields:
            self.errors.append(self._error(name_node, f"`{name}` is given twice"))
        else:
            fields[name] = value

    def _path(self, node: cst.BaseExpression) -> str | None:
        """Return the literal path, recording an error when it is not a valid one."""
        path = _literal_str(node)
        if path is None:
            self.errors.append(
                self._error(
                    node,
                    '`path` must be a string literal such as "/ws/example/:id" (not a variable, '
                    "f-string or expression): the scanner reads handler files without running them",
                )
            )
            return None
        try:
            parse_path(path)
        except InvalidPath as error:
            line, col = self._offset_position(node, error.offset)
            self.errors.append(ConfigError(error.message, self.file, line, col))
            return None
        return path

    def _middleware(self, node: cst.BaseExpression | None) -> tuple[str, ...]:
        if node is None:
            return ()
        if not isinstance(node, cst.List | cst.Tuple):
            self._warn(node, "`middleware` is not a list literal; its entries are not listed")
            return ()
        code = self._module.code_for_node
        return tuple(
            ("*" if isinstance(el, cst.StarredElement) else "") + code(el.value)
            for el in node.elements
        )

    def _events(self, node: cst.BaseExpression | None) -> tuple[str, ...]:
        if node is None:
            return ()
        if not isinstance(node, cst.List | cst.Tuple):
            self._warn(node, "`events` is not a list literal; its event names are not listed")
            return ()
        names: set[str] = set()
        for element in node.elements:
            if not m.matches(element, m.Element(value=_EVENT_CALL)):
                self._warn(element, "not an `Event(...)` call; left out of the event list")
                continue
            name_node = _event_name(cst.ensure_type(element.value, cst.Call))
            name = None if name_node is None else _literal_str(name_node)
            if name is None:
                self._warn(
                    name_node or element, "event name is not a string literal; left out of the list"
                )
            elif name in names:
                self.errors.append(
                    self._error(name_node or element, f"event {name!r} is declared twice")
                )
            else:
                names.add(name)
        return tuple(sorted(names))

    # -- locations ---------------------------------------------------------------------

    def _position(self, node: cst.CSTNode) -> tuple[int, int]:
        start = self.get_metadata(PositionProvider, node).start
        return start.line, start.column + 1

    def _offset_position(self, node: cst.BaseExpression, offset: int) -> tuple[int, int]:
        """Locate character ``offset`` of a string literal's value (best effort: no escapes)."""
        parts = list(_string_parts(node))
        for part in parts:
            length = len(_literal_str(part) or "")
            if offset < length or part is parts[-1]:
                line, col = self._position(part)
                return line, col + len(part.prefix) + len(part.quote) + offset
            offset -= length
        return self._position(node)

    def _error(self, node: cst.CSTNode, message: str) -> ConfigError:
        line, col = self._position(node)
        return ConfigError(message, self.file, line, col)

    def _warn(self, node: cst.CSTNode, message: str) -> None:
        line, col = self._position(node)
        self.warnings.append(f"{self.file}:{line}:{col}: {message}")


def _event_name(call: cst.Call) -> cst.BaseExpression | None:
    for index, arg in enumerate(call.args):
        positional = arg.keyword is None and not arg.star
        if (positional and index == 0) or m.matches(arg, m.Arg(keyword=m.Name("name"))):
            return arg.value
    return None


def _unpacked_names(target: cst.BaseExpression) -> list[cst.Name]:
    """The ``config`` names bound by a tuple or list target, at any depth."""
    if m.matches(target, _CONFIG):
        return [cst.ensure_type(target, cst.Name)]
    if isinstance(target, cst.Tuple | cst.List):
        return [name for el in target.elements for name in _unpacked_names(el.value)]
    return []


def _literal_str(node: cst.BaseExpression) -> str | None:
    """The value of a str literal (implicit concatenation included), else ``None``."""
    if not isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        return None
    with warnings.catch_warnings():
        # Evaluating "\d" warns (SyntaxWarning/DeprecationWarning); the file is not ours to fix.
        warnings.simplefilter("ignore")
        value = node.evaluated_value
    return value if isinstance(value, str) else None


def _string_parts(node: cst.BaseExpression) -> list[cst.SimpleString]:
    if isinstance(node, cst.ConcatenatedString):
        return _string_parts(node.left) + _string_parts(node.right)
    return [node] if isinstance(node, cst.SimpleString) else []
