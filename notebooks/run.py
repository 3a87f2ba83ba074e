"""Run every notebook here top to bottom, headless, as the test command does.

Usage: python notebooks/run.py [NOTEBOOK ...]
Reads TRIBUTARY_PG_URL (the PostgreSQL endpoint, with a user and password) and TRIBUTARY_DATA_DIR
(the data directory) from the environment; fails with the first cell that raises. Outputs are
not written back: the notebooks stay stripped in git.
"""

import pathlib
import sys

import nbformat
from nbclient import NotebookClient

here = pathlib.Path(__file__).parent
books = [pathlib.Path(p) for p in sys.argv[1:]] or sorted(here.glob("*.ipynb"))
for path in books:
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(here)}}).execute()
    print(f"{path.name}: ran {sum(1 for c in book.cells if c.cell_type == 'code')} code cells")
