"""Images as inputs: decoding every form a user hands us (decode), the pixels a vision tower wants
(preprocess), and folders of image files (files). Pillow + numpy only."""
