"""magpie-datasets: Magpie alignment-data synthesis as Hugging Face `datasets` stages."""
