"""Side-by-side comparison strips of restored images, each panel named on the image itself."""
import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_BAND = 18  # pixels above each panel for its name
LARGEST_FONT_SCALE = 0.45
GAP = 4


def label_band(label: str, width: int, channels: int) -> np.ndarray:
    """A white band ``(LABEL_BAND, width[, channels])`` with ``label`` in black, shrunk to fit the width."""
    band = np.full((LABEL_BAND, width, channels), 255, np.uint8)
    if label:
        (text_width, _), _ = cv2.getTextSize(label, FONT, LARGEST_FONT_SCALE, 1)
        scale = LARGEST_FONT_SCALE * min(1., (width - 4) / text_width)
        (_, text_height), _ = cv2.getTextSize(label, FONT, scale, 1)
        cv2.putText(band, label, (2, (LABEL_BAND + text_height) // 2), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return band


def comparison_strip(panels: list[tuple[str, np.ndarray]], gap: int = GAP) -> np.ndarray:
    """Panels left to right, each under its label, ``gap`` white pixels apart.

    Args:
        panels: ``(label, image)`` pairs; images ``uint8`` of one height, ``(H, W)`` or ``(H, W, C)``
            with one ``C`` for all.
        gap: white columns between panels.

    Returns:
        ``uint8 (LABEL_BAND + H, sum(W) + gap * (len(panels) - 1), C)``; ``C`` = 1 for gray panels.
    """
    images = [image if image.ndim == 3 else image[..., None] for _, image in panels]
    heights, channels = {image.shape[0] for image in images}, {image.shape[2] for image in images}
    if len(heights) != 1 or len(channels) != 1:
        raise ValueError(f'comparison_strip: panels must share height and channels, got shapes '
                         f'{[image.shape for image in images]}')
    height, depth = heights.pop(), channels.pop()
    columns = []
    for (label, _), image in zip(panels, images):
        columns.append(np.concatenate([label_band(label, image.shape[1], depth), image.astype(np.uint8)], axis=0))
        columns.append(np.full((LABEL_BAND + height, gap, depth), 255, np.uint8))
    return np.concatenate(columns[:-1], axis=1)
