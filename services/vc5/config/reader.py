"""YAML with positions: compose nodes (which carry marks) and read them with typed getters.

Every getter records a Problem (file, 1-based line/column of the offending
node, key path, message) and returns None instead of raising, so one pass over
the file collects every problem.

Scalars are read from the raw text of the node where the YAML 1.1 resolver
would be a foot-gun: `65000:10` resolves to the base-60 integer 3900010 and
`010` to 8, so communities, names and addresses are taken verbatim.
"""

from __future__ import annotations

import ipaddress
import re

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from . import bounded
from .errors import Problem, did_you_mean

T_NULL = "tag:yaml.org,2002:null"
T_BOOL = "tag:yaml.org,2002:bool"
T_INT = "tag:yaml.org,2002:int"
T_FLOAT = "tag:yaml.org,2002:float"
T_STR = "tag:yaml.org,2002:str"
T_MERGE = "tag:yaml.org,2002:merge"

_DECIMAL = re.compile(r"^[-+]?[0-9]+$")
_NUMBER = re.compile(r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$")
_TRUE = {"true", "yes", "on", "y"}
_FALSE = {"false", "no", "off", "n"}


def kind(node) -> str:
    """A word for the node's type, for messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == T_NULL:
        return "empty"
    if node.tag == T_BOOL:
        return "a boolean"
    if node.tag in (T_INT, T_FLOAT):
        return "a number"
    return "a string"


def is_null(node) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == T_NULL)


class Reader:
    """Reads one YAML document; collects Problems in .problems."""

    def __init__(self, source: str, credentials: str | None = None, require_credentials: bool = False):
        self.source = source
        self.credentials = credentials                  # the systemd credentials directory (secrets.py)
        self.require_credentials = require_credentials
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self._flat: dict = {}   # id(mapping node) -> {key: (key node, value node)} with its merges

    # -- parsing and reporting ------------------------------------------------

    def compose(self, text: str):
        """The root node, or None (with a Problem) when the text is not YAML or out of bounds (bounded.py)."""
        limit = bounded.MAX_BYTES
        if len(text) > limit or len(text.encode("utf-8", "replace")) > limit:
            self.problems.append(Problem(self.source, 0, 0, "", f"the file is larger than {limit} bytes; "
                                                                "a configuration is far smaller"))
            return None
        try:
            return bounded.compose(text)
        except bounded.Refused as e:
            mark = e.mark
            self.problems.append(Problem(self.source, mark.line + 1, mark.column + 1, e.path, e.message))
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            msg = e.problem or "invalid YAML"
            if e.context:
                ctx = e.context
                if e.context_mark is not None and e.context_mark is not mark:
                    cm = e.context_mark
                    ctx += f" (that started at line {cm.line + 1} column {cm.column + 1})"
                msg = f"{ctx}: {msg}"
            self.problems.append(Problem(self.source, mark.line + 1 if mark else 0,
                                         mark.column + 1 if mark else 0, "", f"YAML syntax error: {msg}"))
        except yaml.YAMLError as e:
            self.problems.append(Problem(self.source, 0, 0, "", f"YAML error: {e}"))
        return None

    def where(self, node) -> tuple:
        if node is None:
            return (0, 0)
        m = node.start_mark
        return (m.line + 1, m.column + 1)

    def origin(self, node) -> str:
        line, col = self.where(node)
        return f"{self.source}:{line}:{col}"

    def error(self, node, path: str, message: str) -> None:
        line, col = self.where(node)
        self.problems.append(Problem(self.source, line, col, path, message))

    def warn(self, node, path: str, message: str) -> None:
        line, col = self.where(node)
        self.warnings.append(Problem(self.source, line, col, path, message))

    # -- containers -----------------------------------------------------------

    def mapping(self, node, path: str, allowed=None, what: str = "") -> dict | None:
        """{key: (key_node, value_node)} of a mapping node.

        Keys are the raw key text. Duplicate keys and (when allowed is given)
        unknown keys are reported; unknown keys are dropped from the result.
        YAML merge keys (<<) are honoured; the mapping's own keys win (_merged).
        """
        if not isinstance(node, MappingNode):
            self.error(node, path, f"must be a mapping{what}, not {kind(node)}")
            return None
        own: dict = {}
        for k, v in node.value:
            if k.tag == T_MERGE:
                continue
            if not isinstance(k, ScalarNode):
                self.error(k, path, f"keys must be plain scalars, not {kind(k)}")
                continue
            if k.value in own:
                line, col = self.where(own[k.value][0])
                self.error(k, join(path, k.value),
                           f"duplicate key (first given at line {line} column {col}); "
                           "YAML keeps only the last one, so say it once")
                continue
            own[k.value] = (k, v)
        merged: dict = {}
        if any(k.tag == T_MERGE for k, _ in node.value):
            try:
                merged = self._merged(node)
            except _BadMerge as e:
                self.error(node, path, f"bad merge key: {e}")
        result = {**merged, **own}
        if allowed is not None:
            for key in list(result):
                if key not in allowed:
                    knode = result.pop(key)[0]
                    self.error(knode, join(path, key),
                               f"unknown key '{key}'{did_you_mean(key, allowed)}; "
                               f"allowed here: {', '.join(sorted(allowed))}")
        return result

    def _merged(self, node) -> dict:
        """{key: (key node, value node)} that the merge keys of a mapping bring in.

        The merge key type (https://yaml.org/type/merge.html): `<<: *a` or
        `<<: [*a, *b]` inserts the pairs of a (and b) that the mapping does not
        have itself; in a list, an earlier mapping's key wins. Merged mappings'
        own merge keys count too. Nodes are never changed (PyYAML's
        flatten_mapping rewrites shared nodes in place), and each mapping is
        flattened once: merges are a DAG (bounded.py refuses recursive aliases),
        worked through here without recursion.
        """
        flat = self._flat
        todo = [node]
        while todo:
            n = todo[-1]
            if n is not node and id(n) in flat:
                todo.pop()
                continue
            sources = _merge_sources(n)
            pending = [s for s in sources if id(s) not in flat]
            if pending:
                todo.extend(pending)
                continue
            todo.pop()
            out: dict = {}
            for s in sources:
                out.update(flat[id(s)])
            if n is not node:
                out.update((k.value, (k, v)) for k, v in n.value
                           if k.tag != T_MERGE and isinstance(k, ScalarNode))
                flat[id(n)] = out
        return out

    def sequence(self, node, path: str, scalar_ok: bool = False) -> list | None:
        """The item nodes of a list (or [node] for a lone scalar when scalar_ok)."""
        if isinstance(node, SequenceNode):
            return list(node.value)
        if scalar_ok and isinstance(node, ScalarNode) and not is_null(node):
            return [node]
        self.error(node, path, f"must be a list{' or a single value' if scalar_ok else ''}, not {kind(node)}")
        return None

    # -- scalars ----------------------------------------------------------------

    def text(self, node, path: str, what: str = "a string") -> str | None:
        """Raw scalar text (numbers and booleans accepted verbatim, as vc5's Perl does)."""
        if not isinstance(node, ScalarNode) or is_null(node):
            self.error(node, path, f"must be {what}, not {kind(node)}")
            return None
        return node.value

    def integer(self, node, path: str, lo: int, hi: int, what: str = "") -> int | None:
        if isinstance(node, ScalarNode) and node.tag in (T_INT, T_STR) and _DECIMAL.match(node.value.strip()):
            v = int(node.value.strip(), 10)
            if lo <= v <= hi:
                return v
            self.error(node, path, f"{v} is out of range: {what or 'must be an integer'} "
                                   f"from {lo} to {hi}")
            return None
        got = kind(node) if not isinstance(node, ScalarNode) else repr(node.value)
        self.error(node, path, f"must be {what or 'an integer'} from {lo} to {hi}, not {got}")
        return None

    def port(self, node, path: str, what: str = "a port") -> int | None:
        """A TCP or UDP port 1..65535 (RFC 9293 §3.1; 0 is reserved): digits only, so no '+80'."""
        if isinstance(node, ScalarNode) and node.value.strip().startswith("+"):
            self.error(node, path, f"must be {what} from 1 to 65535, not {node.value!r}")
            return None
        return self.integer(node, path, 1, 65535, what)

    def number(self, node, path: str, lo: float, hi: float,
               what: str = "a number of seconds") -> float | None:
        if isinstance(node, ScalarNode) and node.tag in (T_INT, T_FLOAT, T_STR) \
                and _NUMBER.match(node.value.strip()):
            v = float(node.value.strip())
            if lo <= v <= hi:
                return v
            self.error(node, path, f"{node.value} is out of range: {what} from {lo:g} to {hi:g}")
            return None
        got = kind(node) if not isinstance(node, ScalarNode) else repr(node.value)
        self.error(node, path, f"must be {what} from {lo:g} to {hi:g}, not {got}")
        return None

    def boolean(self, node, path: str) -> bool | None:
        """YAML booleans (true/false, and YAML 1.1's yes/no/on/off)."""
        if isinstance(node, ScalarNode) and node.tag in (T_BOOL, T_STR):
            word = node.value.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
        got = kind(node) if not isinstance(node, ScalarNode) else repr(node.value)
        self.error(node, path, f"must be true or false, not {got}")
        return None

    def address(self, node, path: str, version: int | None = None, what: str = "") -> object | None:
        """An IPv4/IPv6 address (version 4 or 6 restricts the family)."""
        s = self.text(node, path, "an IP address")
        if s is None:
            return None
        try:
            a = ipaddress.ip_address(s.strip())
        except ValueError:
            fam = {4: "an IPv4 address", 6: "an IPv6 address"}.get(version, "an IPv4 or IPv6 address")
            self.error(node, path, f"'{s}' is not {what or fam}")
            return None
        if version and a.version != version:
            self.error(node, path, f"'{s}' is IPv{a.version}; {what or f'an IPv{version} address'} is needed")
            return None
        return a

    def network(self, node, path: str, what: str = "a prefix") -> object | None:
        """A network 'a.b.c.d/n' or a bare address (-> /32 or /128); host bits are an error."""
        s = self.text(node, path, what)
        if s is None:
            return None
        s = s.strip()
        try:
            return ipaddress.ip_network(s, strict=True)
        except ValueError:
            pass
        try:
            loose = ipaddress.ip_network(s, strict=False)
        except ValueError:
            self.error(node, path, f"'{s}' is not {what} (a CIDR such as 192.0.2.0/24 or 2001:db8::/32, "
                                   "or an address)")
            return None
        self.error(node, path, f"'{s}' has host bits set; did you mean {loose}?")
        return None


class _BadMerge(ValueError):
    pass


def _merge_sources(node) -> list:
    """The mappings a mapping's merge keys name, the one that wins last (as PyYAML's flatten_mapping)."""
    out = []
    for k, v in node.value:
        if k.tag != T_MERGE:
            continue
        if isinstance(v, MappingNode):
            out.append(v)
        elif isinstance(v, SequenceNode):
            for sub in v.value:
                if not isinstance(sub, MappingNode):
                    raise _BadMerge(f"expected a mapping for merging, but found {sub.id}")
            out.extend(reversed(v.value))
        else:
            raise _BadMerge(f"expected a mapping or list of mappings for merging, but found {v.id}")
    return out


def join(path: str, key) -> str:
    """Extend a key path: join('services[0]', 'policy') == 'services[0].policy'."""
    return f"{path}.{key}" if path else str(key)
