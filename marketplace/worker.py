"""Entry module for `dramatiq marketplace.worker`: imports every module that declares actors."""

from marketplace import jobs
from marketplace.db import import_all_models

import_all_models()
broker = jobs.broker
