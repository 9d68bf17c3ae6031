"""Repair of mojibake: UTF-8 that was decoded as Mac Roman or Windows-1252 and saved again.

The project's seed trajectories came to us this way (``üß†`` for 🧠, ``‚Äô`` for ’). We use
ftfy, which detects the wrong codec from the text itself, instead of a hand-written table that
would only know the characters we happened to see.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ftfy import TextFixerConfig


@cache
def _encoding_only_config() -> TextFixerConfig:
    # Only undo the wrong decoding: curly quotes, ligatures, widths and line breaks in the
    # original were written by the model on purpose and must survive byte for byte.
    from ftfy import TextFixerConfig

    return TextFixerConfig(
        unescape_html=False,
        remove_terminal_escapes=False,
        fix_encoding=True,
        restore_byte_a0=True,
        replace_lossy_sequences=True,
        decode_inconsistent_utf8=True,
        fix_c1_controls=True,
        fix_latin_ligatures=False,
        fix_character_width=False,
        uncurl_quotes=False,
        fix_line_breaks=False,
        fix_surrogates=False,
        remove_control_chars=False,
        normalization=None,
        explain=True,
    )


def repair_mojibake(text: str) -> tuple[str, str | None]:
    """Return ``(fixed_text, codec)``; ``codec`` names the wrong decoding undone, or None.

    ``codec`` is ftfy's name for it, e.g. ``"macroman"`` or ``"sloppy-windows-1252"``.
    """
    import ftfy

    fixed, explanation = ftfy.fix_and_explain(text, config=_encoding_only_config())
    if fixed == text:
        return text, None
    codecs = [arg for step, arg in explanation or [] if step == "encode"]
    return fixed, codecs[0] if codecs else "unknown"
