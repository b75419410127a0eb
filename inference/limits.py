"""Limits on what a request may carry, shared by every endpoint whatever its model kind."""

#: Upper bound on decoded pixels: rejects decompression bombs before they are allocated.
MAX_IMAGE_PIXELS = 40_000_000
#: Largest accepted encoded image (Lambda's 6 MB payload carries ≈ 4.4 MB raw after base64).
MAX_IMAGE_BYTES = 4_400_000
