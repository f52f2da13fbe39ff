"""Data contracts between the stages: Great Expectations suites stored as data
in ``data_contracts/``, checked partition by partition on Dask.

    from tasks.contracts import ValidationSettings, validate
    validate("ingested_events", "<run>/events", ValidationSettings.under(data_root), client)
"""

from tasks.contracts.suites import available, load_contract
from tasks.contracts.validation import ContractError, ValidationSettings, format_report, validate

__all__ = ["ContractError", "ValidationSettings", "available", "format_report", "load_contract", "validate"]
