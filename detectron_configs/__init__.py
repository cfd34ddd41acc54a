"""detectron2 configs of hpaseg, installed as the package ``hpaseg.detectron_configs``
(see ``hpaseg.detection.detectron2.config``)."""
