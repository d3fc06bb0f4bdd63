"""One module per dataset family; importing them registers them in reidkit.data.DATASETS."""
from reidkit.data.datasets import cuhk03, custom, market1501, msmt17, viper

__all__ = ["cuhk03", "custom", "market1501", "msmt17", "viper"]
