"""Side-by-side comparison strips of restored images, each panel named on the image itself."""
import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_BAND = 18  # pixels above each panel for its name
LARGEST_FONT_SCALE = 0.45
# Below this scale a word is under about 7 pixels tall (OpenCV 4 and 5), too small to read: a label
# that does not fit its panel at this scale widens the panel's column instead of shrinking further.
SMALLEST_FONT_SCALE = 0.35
LABEL_MARGIN = 2  # white pixels left and right of a label
GAP = 4


def fitted_label(label: str, width: int) -> tuple[float, int]:
    """The font scale of ``label`` over a panel ``width`` pixels wide, and the width of its column.

    The label shrinks to fit the panel, never below ``SMALLEST_FONT_SCALE``; a label still wider
    than the panel at that scale makes its column wider than the panel (white on the panel's right).
    """
    if not label:
        return LARGEST_FONT_SCALE, width
    (text_width, _), _ = cv2.getTextSize(label, FONT, LARGEST_FONT_SCALE, 1)
    fitting = LARGEST_FONT_SCALE * (width - 2 * LABEL_MARGIN) / text_width
    scale = min(LARGEST_FONT_SCALE, max(SMALLEST_FONT_SCALE, fitting))
    if fitting >= SMALLEST_FONT_SCALE:
        return scale, width
    (text_width, _), _ = cv2.getTextSize(label, FONT, scale, 1)
    return scale, text_width + 2 * LABEL_MARGIN


def label_band(label: str, width: int, channels: int, scale: float) -> np.ndarray:
    """A white band ``(LABEL_BAND, width, channels)`` with ``label`` in black at font ``scale``, centred vertically."""
    band = np.full((LABEL_BAND, width, channels), 255, np.uint8)
    if label:
        (_, text_height), baseline = cv2.getTextSize(label, FONT, scale, 1)
        top = max(0, (LABEL_BAND - text_height - baseline) // 2)
        cv2.putText(band, label, (LABEL_MARGIN, top + text_height), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return band


def comparison_strip(panels: list[tuple[str, np.ndarray]], gap: int = GAP) -> np.ndarray:
    """Panels left to right, each under its label, ``gap`` white pixels apart.

    Args:
        panels: ``(label, image)`` pairs; images ``uint8`` of one height, ``(H, W)`` or ``(H, W, C)``
            with one ``C`` for all.
        gap: white columns between panels.

    Returns:
        ``uint8 (LABEL_BAND + H, sum(column widths) + gap * (len(panels) - 1), C)``; ``C`` = 1 for gray
        panels. A column is its panel's width (``fitted_label``), wider only where the label would
        otherwise be too small to read; the panel sits at the column's left.
    """
    images = [image if image.ndim == 3 else image[..., None] for _, image in panels]
    heights, channels = {image.shape[0] for image in images}, {image.shape[2] for image in images}
    if len(heights) != 1 or len(channels) != 1:
        raise ValueError(f'comparison_strip: panels must share height and channels, got shapes '
                         f'{[image.shape for image in images]}')
    height, depth = heights.pop(), channels.pop()
    columns = []
    for (label, _), image in zip(panels, images):
        scale, column_width = fitted_label(label, image.shape[1])
        column = np.full((LABEL_BAND + height, column_width, depth), 255, np.uint8)
        column[:LABEL_BAND] = label_band(label, column_width, depth, scale)
        column[LABEL_BAND:, :image.shape[1]] = image
        columns.append(column)
        columns.append(np.full((LABEL_BAND + height, gap, depth), 255, np.uint8))
    return np.concatenate(columns[:-1], axis=1)
