from datasets import Dataset

import magpie_datasets.schema as schema


def test_typed_batch_survives_all_none_first_batch():
    ds = Dataset.from_dict({"i": list(range(6))})

    def issue(batch):
        values = [None if i < 3 else "empty" for i in batch["i"]]
        return schema.typed_batch({"response_issue": values}, schema.RESPONSE_FEATURES)

    out = ds.map(issue, batched=True, batch_size=3)
    assert out.features["response_issue"].dtype == "string"
    assert out["response_issue"] == [None, None, None, "empty", "empty", "empty"]
