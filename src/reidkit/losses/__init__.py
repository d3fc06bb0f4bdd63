"""Losses: label-smoothed cross-entropy, batch-hard triplet (+ its miner), and build_criterion, which reads
which losses apply to which stream from the model's declaration."""
from reidkit.losses.base import LOSSES, LossOptions
from reidkit.losses.criterion import Criterion, build_criterion
from reidkit.losses.cross_entropy import CrossEntropyLabelSmooth
from reidkit.losses.miners import BatchHardMiner, HardTriplets, batch_hard, pairwise_distance
from reidkit.losses.triplet import TripletLoss

__all__ = [
    "LOSSES",
    "BatchHardMiner",
    "Criterion",
    "CrossEntropyLabelSmooth",
    "HardTriplets",
    "LossOptions",
    "TripletLoss",
    "batch_hard",
    "build_criterion",
    "pairwise_distance",
]
