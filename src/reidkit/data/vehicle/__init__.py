"""Vehicle re-ID datasets: VeRi-776, AICity 2020 track 2, VehicleID, and synthetic vehicles in the VeRi layout.

Importing this package registers them in reidkit.data.DATASETS: "veri776", "aicity2020", "vehicleid",
"synthetic_vehicles" (each with `gallery_tracks`: index arrays into `.gallery`, empty without tracks), and the
AICity augmentation as data.recipe "vehicle". The recipe's balanced sampler is in `sampling`.
"""
from reidkit.data.vehicle import aicity, sampling, synthetic, transforms, vehicleid, veri  # noqa: F401  (registration)
from reidkit.data.vehicle.common import VehicleDataset, read_track_file
from reidkit.data.vehicle.synthetic import SyntheticVehicleConfig, make_synthetic_vehicles, read_meta

__all__ = ["SyntheticVehicleConfig", "VehicleDataset", "make_synthetic_vehicles", "read_meta", "read_track_file"]
