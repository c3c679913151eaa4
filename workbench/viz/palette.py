"""Colours shared by the figures: a categorical palette that stays distinct for many blocks."""

from __future__ import annotations

import colorsys

# up to 10 blocks: the familiar D3 colours; up to 20: Kelly's colours of maximum contrast (without white,
# black and the near-duplicates of each other), ordered so that neighbours in the list differ most
_D3 = "#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf".split()
_KELLY = (
    "#f3c300 #875692 #f38400 #a1caf1 #be0032 #c2b280 #848482 #008856 #e68fac #0067a5 "
    "#f99379 #604e97 #f6a600 #b3446c #dcd300 #882d17 #8db600 #654522 #e25822 #2b3d26"
).split()

EDGE_SCALE = "Blues"
"""Sequential colour scale of edge weights (light: light weights)."""


def categorical(n: int) -> list[str]:
    """``n`` distinct colours: D3's 10 for up to 10, Kelly's 20 for up to 20, then evenly spaced hues at
    alternating lightness added to Kelly's."""
    if n <= len(_D3):
        return list(_D3[:n])
    if n <= len(_KELLY):
        return list(_KELLY[:n])
    extra = n - len(_KELLY)
    golden = 0.618033988749895
    more = []
    for i in range(extra):
        hue = (i * golden) % 1.0
        light = (0.35, 0.55, 0.7)[i % 3]
        r, g, b = colorsys.hls_to_rgb(hue, light, 0.75)
        more.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return list(_KELLY) + more
