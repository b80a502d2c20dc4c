"""Reference values for the smoothing line of results.png (src/plots/results.rs, test
`gaussian_filter_matches_scipy`): scipy.ndimage.gaussian_filter1d(y, sigma=3) with its defaults (mode
"reflect", truncate 4.0), the filter Ultralytics' plot_results draws (8.4.190 reimplements it in NumPy as
`_gaussian_filter1d`; both are printed and must agree).

Run with a Python that has numpy, scipy and ultralytics 8.4.190:  python scripts/gaussian_filter_reference.py
"""

import numpy as np
from scipy.ndimage import gaussian_filter1d
from ultralytics.utils.plotting import _gaussian_filter1d

CASES = {
    "one": [0.7],
    "two": [1.0, 3.0],
    "five": [1.62, 1.41, 1.33, 1.29, 1.2],
    "twelve": [np.sin(i / 2.0) + 0.1 * i for i in range(12)],
    "thirty": [(-1.0) ** i * 0.5 + 0.02 * i * i for i in range(30)],
}

for name, y in CASES.items():
    y = np.asarray(y, dtype=float)
    scipy_out = gaussian_filter1d(y, sigma=3)
    ultra_out = _gaussian_filter1d(y, sigma=3)
    assert np.allclose(scipy_out, ultra_out, rtol=0, atol=1e-12), name
    print(f"// {name}")
    print("input: [" + ", ".join(repr(float(v)) for v in y) + "],")
    print("expected: [" + ", ".join(repr(float(v)) for v in scipy_out) + "],")
