"""The extras every backend module supplies, named once.

What the array API standard lacks (``scatter_add``, ``sliding_windows``, ``pad``...), the explicit
host copies, and two capability flags. Each module under ``autobp/backends`` defines all of them
(``None`` where its library has no such function and the op's general path runs instead);
``namespace()`` puts them beside the standard's functions. Adding an extra is one name here and one
definition per module; tests/test_ops_libraries.py checks each module's parameters against numpy's.
"""

EXTRAS = (
    "to_numpy",
    "from_numpy",
    "device",
    "device_name",
    "dtype_name",
    "is_view",
    "memory_owner",
    "owns_memory",
    "strides",
    "scatter_add",
    "quiet",
    "float_dtype",
    "sliding_windows",
    "pad",
    # shape / indexing / linalg
    "sum_kept",
    "matmul_nt",
    "matmul_tn",
    "advanced_indexing",
    "negative_steps",
    "einsum",
)
