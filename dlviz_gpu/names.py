"""Names are data: the one rule for showing a name to a person.

Tensor, parameter, module and file names come from files anyone may have
written, so they can hold anything a string can: an escape sequence that
rewrites a terminal, a carriage return that hides the start of a line, NUL,
a right-to-left override that reverses what follows, a lone surrogate that
no UTF-8 encoder accepts, ten thousand characters.  Everywhere a name is
*shown* (a terminal table, an HTML report, a plot title, a hover, a legend,
a widget's options) it goes through :func:`display`; everywhere a name is
*used* (a catalog lookup, a JSON row, a file read) it stays exact.

The shown form is the body of Python's ``repr`` without the quotes: every
character that is not printable (``str.isprintable``: the C0 and C1
controls, DEL, format characters such as U+202E and the zero-width ones,
line and paragraph separators, surrogates, private-use and unassigned code
points, spaces other than U+0020) becomes its escape, ``\\n``, ``\\r``,
``\\t``, ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``, and a backslash is
doubled.  A name of printable characters is shown as it is (dots, slashes,
accents, CJK, quotes, ``<`` and ``&``: HTML escaping is the page's job, done
after this).  Two different names never show the same (the escapes are
unambiguous), so a widget can map what it shows back to the exact name.

This module imports nothing beyond the standard library: every layer (the
CLI, the models, the views, the app) may use it.
"""

from __future__ import annotations

__all__ = ["display", "displayed", "ELLIPSIS"]

#: What stands for the characters a ``limit`` leaves out.
ELLIPSIS = "\u2026"

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str, exact: bool) -> str:
    """The shown form of one character."""
    if c == "\\":
        return "\\\\" if exact else c
    if c.isprintable():
        return c
    if c in _SHORT:
        return _SHORT[c]
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _repr_body(text: str) -> str:
    """``repr(text)`` without its quotes and without escaping a quote (at C speed).

    ``repr`` escapes exactly what :func:`display` escapes, in the same way,
    plus the quote it delimits with: ``'`` unless the text holds a ``'`` and
    no ``"``.  With ``'`` every ``'`` is escaped, each by its own backslash,
    so replacing ``\\'`` from the left undoes only those (the str type's own
    ``__repr__``: a subclass may have another).
    """
    r = str.__repr__(text)
    body = r[1:-1]
    return body.replace("\\'", "'") if r[0] == "'" else body


def display(name, *, limit: int | None = None, exact: bool = True) -> str:
    """The form of ``name`` that is safe to show: control and invisible characters escaped.

    Parameters
    ----------
    name : str
        A tensor, parameter, module or file name, or any text from a file.
        Anything else is shown as ``str(name)``.
    limit : int, optional
        Show at most about this many characters: a longer shown form keeps
        its start and end around :data:`ELLIPSIS` (for titles and labels,
        where ten thousand characters cannot be read; a name cut this way
        may show like another one, so widgets that map back use no limit).
    exact : bool
        True (default): a backslash is doubled, so the shown form maps back
        to exactly one name (``repr`` without the quotes).  False: for free
        text such as a message that already quotes names with ``repr``, or a
        Windows path: backslashes stay single, only unprintable characters
        are escaped.

    Returns
    -------
    str
        Printable characters only: no control character, no bidirectional
        override, no surrogate.  ``display("w\\x1b[2J")`` is ``"w\\\\x1b[2J"``
        (shown as ``w\\x1b[2J``); ``display("a\\nb")`` is ``"a\\\\nb"``.

    Examples
    --------
    >>> display("layers.0.mlp.fc.weight")
    'layers.0.mlp.fc.weight'
    >>> print(display("evil\\x1b[2J\\r\\n\\u202ename"))
    evil\\x1b[2J\\r\\n\\u202ename
    """
    text = name if isinstance(name, str) else str(name)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 3):
        raise ValueError(f"limit: expected an integer >= 3 or None; got {limit!r}")
    if text.isprintable() and (not exact or "\\" not in text):
        shown = text
    else:
        shown = _repr_body(text)
        if not exact:
            shown = shown.replace("\\\\", "\\")
    if limit is None or len(shown) <= limit:
        return shown
    # cut at whole characters (never inside an escape), keeping twice as much
    # of the start (where a module path begins) as of the end (its leaf)
    pieces = [_escape(c, exact) for c in text]
    room = limit - len(ELLIPSIS)
    head_room = room - room // 3
    head, used = [], 0
    for p in pieces:
        if used + len(p) > head_room:
            break
        head.append(p)
        used += len(p)
    tail, used_t = [], 0
    for p in reversed(pieces[len(head):]):
        if used + used_t + len(p) > room:
            break
        tail.append(p)
        used_t += len(p)
    return "".join(head) + ELLIPSIS + "".join(reversed(tail))


def displayed(names) -> dict:
    """``{display(name): name}`` for widget options that show names and give back the exact one.

    Parameters
    ----------
    names : iterable of str

    Returns
    -------
    dict
        In the order given; every shown form is unique because
        :func:`display` (without a limit) never shows two names the same.
    """
    return {display(n): n for n in names}
