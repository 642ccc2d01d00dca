"""Results tables of sweeps, with the paper's numbers beside ours."""

from asap.reporting.results import ResultsTable, build_results_table, load_paper_tables
from asap.reporting.writers import to_rich, to_rich_slices, write_all

__all__ = ["ResultsTable", "build_results_table", "load_paper_tables", "report", "to_rich", "write_all"]


def report(sweep_dir, sweep_name=None):  # type: ignore[no-untyped-def]
    """Build, print and write (md, tex, csv, png) the results table of a multirun folder."""
    from pathlib import Path

    from asap.utils.console import console

    results = build_results_table(Path(sweep_dir), sweep_name)
    console.print(to_rich(results))
    by_slice = to_rich_slices(results)  # per manipulation type, from each job's breakdown_test.csv
    if by_slice is not None:
        console.print(by_slice)
    paths = write_all(results, Path(sweep_dir))
    console.print("written: " + ", ".join(str(p) for p in paths.values()))
    return results
