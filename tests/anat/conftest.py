import sys
from pathlib import Path

# the known-truth builder next to the tests
sys.path.insert(0, str(Path(__file__).parent))
