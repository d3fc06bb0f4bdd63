"""Video re-ID data: tracklet datasets (MARS, DukeMTMC-VideoReID with attributes; iLIDS-VID, PRID2011),
attribute schemas, synthetic video, clip sampling, chunked test clips and the tracklet identity sampler.

Importing this package registers the video datasets in reidkit.data.DATASETS.
"""
from reidkit.data.video.attributes import DUKEV_ATTRIBUTES, MARS_ATTRIBUTES, AttributeSchema, read_attribute_csv
from reidkit.data.video.base import Tracklet, VideoDataset
from reidkit.data.video.dukev import DukeMTMCVideoReID
from reidkit.data.video.mars import Mars
from reidkit.data.video.sampling import (ClipTransform, VideoChunkDataset, VideoClipDataset, build_video_test_loader,
                                         build_video_train_loader, chunk_indices, train_clip_indices)
from reidkit.data.video.synthetic import SyntheticVideo, SyntheticVideoConfig, generate_video_dataset
from reidkit.data.video.transforms import asta as asta_transform
from reidkit.data.video.two_camera import ILIDSVID, PRID2011

__all__ = [
    "DUKEV_ATTRIBUTES",
    "ILIDSVID",
    "MARS_ATTRIBUTES",
    "PRID2011",
    "AttributeSchema",
    "ClipTransform",
    "SyntheticVideo",
    "SyntheticVideoConfig",
    "VideoChunkDataset",
    "VideoClipDataset",
    "asta_transform",
    "build_video_test_loader",
    "build_video_train_loader",
    "chunk_indices",
    "generate_video_dataset",
    "train_clip_indices",
    "DukeMTMCVideoReID",
    "Mars",
    "Tracklet",
    "VideoDataset",
    "read_attribute_csv",
]
