"""Model builders: four-channel Mask R-CNN backbones (torchvision) and stem adaptation."""
