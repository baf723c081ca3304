import doctest

from datasets import Dataset

import magpie_datasets.schema as schema
from magpie_datasets.schema import batches, conversations, features


def test_schema_doctests():
    results = [doctest.testmod(module, optionflags=doctest.ELLIPSIS) for module in (features, batches, conversations)]
    assert sum(r.attempted for r in results) >= 3 and sum(r.failed for r in results) == 0


def test_typed_batch_survives_all_none_first_batch():
    ds = Dataset.from_dict({"i": list(range(6))})

    def issue(batch):
        values = [None if i < 3 else "empty" for i in batch["i"]]
        return schema.typed_batch({"response_issue": values}, schema.RESPONSE_FEATURES)

    out = ds.map(issue, batched=True, batch_size=3)
    assert out.features["response_issue"].dtype == "string"
    assert out["response_issue"] == [None, None, None, "empty", "empty", "empty"]
