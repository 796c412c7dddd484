"""Every example contract passes the real datacontract-cli's `lint`, and the example mesh applies.

Proves that the contracts Weft ships as examples are valid ODCS as the reference tool reads
them, not only as Weft's own parser reads them.
"""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONTRACTS = sorted((ROOT / "examples").rglob("*.odcs.yaml"))
DATACONTRACT = pathlib.Path(sys.executable).parent / "datacontract"


def test_examples_exist():
    assert len(CONTRACTS) >= 4, "the example mesh should hold at least four contracts"


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_contract_passes_datacontract_lint(contract):
    result = subprocess.run([str(DATACONTRACT), "lint", str(contract)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"datacontract lint failed for {contract}:\n{result.stdout}\n{result.stderr}"
