"""Markdown tables and the small number formatting every scenario uses."""


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(value):
    if value is None:
        return "–"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def signed_ms(value):
    if value is None:
        return "–"
    return ("+" if value >= 0 else "") + ms(value)


def ratio(a, b):
    if a is None or b in (None, 0):
        return "–"
    return f"{a / b:.2f}×"


def num(value):
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def rotate(names, i):
    """The contenders in turn order `i`, so drift (heat, other load) hits them all alike."""
    k = i % len(names)
    return names[k:] + names[:k]
