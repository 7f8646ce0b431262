import numpy as np

from vidrec.models.sparse import expand_ranges, row_pointer, sorted_positions


def test_expand_ranges_concatenates_each_range_in_order() -> None:
    got = expand_ranges(np.array([5, 0, 9, 2]), np.array([2, 0, 3, 1]))
    assert got.tolist() == [5, 6, 9, 10, 11, 2]
    assert got.dtype == np.int64
    assert expand_ranges(np.zeros(0), np.zeros(0)).tolist() == []


def test_row_pointer_counts_rows_including_empty_ones() -> None:
    ptr = row_pointer(np.array([0, 0, 2, 2, 2, 4]), 5)
    assert ptr.tolist() == [0, 2, 2, 5, 5, 6]
    assert row_pointer(np.zeros(0, np.int64), 3).tolist() == [0, 0, 0, 0]


def test_csr_gather_round_trip() -> None:
    rng = np.random.default_rng(0)
    rows = np.sort(rng.integers(0, 30, 200))
    vals = rng.integers(0, 1000, 200)
    ptr = row_pointer(rows, 30)
    pick = np.array([3, 17, 3, 29, 0])
    idx = expand_ranges(ptr[pick], ptr[pick + 1] - ptr[pick])
    expected = np.concatenate([vals[rows == r] for r in pick])
    np.testing.assert_array_equal(vals[idx], expected)


def test_sorted_positions_marks_values_not_there() -> None:
    ids = np.array([2, 5, 9])
    assert sorted_positions(ids, np.array([9, 2, 3, 10, 0, 5])).tolist() == [2, 0, -1, -1, -1, 1]
    assert sorted_positions(np.array([], dtype=np.int64), np.array([1, 2])).tolist() == [-1, -1]
