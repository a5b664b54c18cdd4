"""YAML composition with bounds: file size, nesting depth, and nodes after alias expansion.

An alias (`*a`, YAML 1.1 spec §3.2.2.2 and §4.1 "Node Anchors") stands for the
whole anchored node, and a merge key (`<<`, https://yaml.org/type/merge.html)
copies a mapping's pairs: a few hundred bytes of nested aliases expand to
billions of nodes ("billion laughs"; issue #12: 539 bytes took 9.2 s CPU and
1 GiB). The composer here counts, as each node is composed, the nodes the
document would have with every alias expanded, and refuses the document at the
alias that takes it past MAX_NODES; it also refuses nesting deeper than
MAX_DEPTH (libyaml's own composer recurses in C and crashes the process at
about 100,000 levels) and aliases to a node that contains them (recursive
structures). docs/configuration.md, "Limits".

It is PyYAML's composer (yaml.composer.Composer) on libyaml's parser events:
the nodes and their marks are those of yaml.CSafeLoader's composer.
"""

from __future__ import annotations

from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.resolver import Resolver

try:  # libyaml's parser; the events carry the same marks as the pure-Python parser's
    from yaml._yaml import CParser as _Parser
    _PARSERS: tuple = (_Parser,)
except ImportError:  # pragma: no cover
    from yaml.parser import Parser
    from yaml.reader import Reader as _YamlReader
    from yaml.scanner import Scanner
    _PARSERS = (_YamlReader, Scanner, Parser)

MAX_BYTES = 16 * 1024 * 1024   # the configuration file, in bytes
MAX_DEPTH = 64                 # nested collections (a vc5 configuration needs about 8)
MAX_NODES = 1_000_000          # nodes with every alias expanded (100,000 prefixes are 100,002)


class Refused(Exception):
    """The document exceeds a bound: where (a yaml Mark), the key path and why."""

    def __init__(self, mark, path: str, message: str):
        super().__init__(message)
        self.mark = mark
        self.path = path
        self.message = message


class BoundedLoader(Composer, *_PARSERS, SafeConstructor, Resolver):
    """get_single_node() as yaml.CSafeLoader's, within MAX_DEPTH and MAX_NODES; raises Refused."""

    def __init__(self, text: str):
        for cls in _PARSERS:
            cls.__init__(self, text)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.expanded = 0      # nodes so far, each alias counted as the size of its anchored node
        self.sizes = {}        # anchor -> expanded size of its node, once composed
        self.paths = [""]      # key path of the node being composed

    def compose_node(self, parent, index):
        path = self._path(parent, index)
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            self._alias(event, path)
            return super().compose_node(parent, index)
        if len(self.paths) > MAX_DEPTH:
            raise Refused(event.start_mark, path, f"nesting deeper than {MAX_DEPTH} levels; a vc5 "
                                                  "configuration needs about 8")
        before = self.expanded
        self.expanded += 1
        self.paths.append(path)
        try:
            node = super().compose_node(parent, index)
        finally:
            self.paths.pop()
        if event.anchor is not None:
            self.sizes[event.anchor] = self.expanded - before
        return node

    def _alias(self, event, path: str) -> None:
        """Count the anchored node again (YAML 1.1 §3.2.2.2: an alias is the anchored node itself)."""
        anchor = event.anchor
        if anchor not in self.anchors:
            return   # the composer reports "found undefined alias"
        size = self.sizes.get(anchor)
        if size is None:
            raise Refused(event.start_mark, path, f"alias *{anchor} is inside the node it refers to; "
                                                  "recursive structures are not allowed")
        self.expanded += size
        if self.expanded > MAX_NODES:
            raise Refused(event.start_mark, path, f"alias *{anchor} expands the document past "
                                                  f"{MAX_NODES:,} nodes (each alias and merge key "
                                                  "copies its anchored node); write the values out or "
                                                  "nest fewer aliases")

    def _path(self, parent, index) -> str:
        """The key path of a child: parent.key for a mapping value, parent[i] for a list item."""
        base = self.paths[-1]
        if isinstance(parent, SequenceNode):
            return f"{base}[{index}]"
        if isinstance(parent, MappingNode) and isinstance(index, ScalarNode):
            return f"{base}.{index.value}" if base else index.value
        return base


def compose(text: str):
    """The root node of one YAML document (None when empty); raises yaml.YAMLError or Refused."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()
