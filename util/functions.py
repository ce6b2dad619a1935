"""Small helpers shared by the training and test scripts."""

from collections import deque


class MovingAverage:
    """Mean of the last `max_window_size` values added (e.g. the training loss)."""

    # Values above this are treated as blow-ups (inf / overflowed losses) and skipped, so
    # that one bad step does not poison the logged average for a whole window.
    IGNORE_ABOVE = 999999999999

    def __init__(self, max_window_size=1000):
        self.max_window_size = max_window_size
        self.reset()

    def add(self, elem):
        """Add one value, dropping the oldest once the window is full."""
        if elem > self.IGNORE_ABOVE:
            print('Warning: Moving average ignored a value of %f' % elem)
            return
        self.window.append(elem)
        self.sum += elem
        if len(self.window) > self.max_window_size:
            self.sum -= self.window.popleft()

    def reset(self):
        """Empty the window."""
        self.window = deque()
        self.sum = 0

    def get_avg(self):
        """Mean over the window; 0 when empty."""
        return self.sum / max(len(self.window), 1)

    def __str__(self):
        return str(self.get_avg())

    def __repr__(self):
        return repr(self.get_avg())
