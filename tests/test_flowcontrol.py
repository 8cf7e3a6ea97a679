"""
Tests for L{interceptor.transport.flowcontrol.AckValve}, on a StringTransport.
"""

from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from interceptor.transport.flowcontrol import AckValve


class AckValveTests(unittest.TestCase):
    """
    The valve is its transport's push producer and holds acknowledgements
    while the transport says its buffer is full.
    """

    def setUp(self):
        self.transport = StringTransport()
        self.valve = AckValve(self.transport)
        self.ran = []

    def test_interface_and_registration(self):
        """It is an IPushProducer, registered as a streaming producer."""
        self.assertTrue(verifyObject(IPushProducer, self.valve))
        self.assertIs(self.transport.producer, self.valve)
        self.assertTrue(self.transport.streaming)

    def test_runs_at_once_with_room(self):
        """With room in the buffer an acknowledgement runs at once."""
        self.valve.run(lambda: self.ran.append(1))
        self.assertEqual(self.ran, [1])

    def test_holds_while_paused(self):
        """Paused, acknowledgements wait; resumed, they run in order."""
        self.valve.pauseProducing()
        self.valve.run(lambda: self.ran.append(1))
        self.valve.run(lambda: self.ran.append(2))
        self.assertEqual(self.ran, [])
        self.valve.resumeProducing()
        self.assertEqual(self.ran, [1, 2])

    def test_pause_during_resume(self):
        """An acknowledgement that fills the buffer again stops the rest until the next resume."""
        self.valve.pauseProducing()
        self.valve.run(lambda: (self.ran.append(1), self.valve.pauseProducing()))
        self.valve.run(lambda: self.ran.append(2))
        self.valve.resumeProducing()
        self.assertEqual(self.ran, [1])
        self.valve.resumeProducing()
        self.assertEqual(self.ran, [1, 2])

    def test_detach(self):
        """detach() unregisters the producer and runs what was held, once."""
        self.valve.pauseProducing()
        self.valve.run(lambda: self.ran.append(1))
        self.valve.detach()
        self.assertIsNone(self.transport.producer)
        self.assertEqual(self.ran, [1])
        self.valve.detach()
        self.valve.run(lambda: self.ran.append(2))
        self.assertEqual(self.ran, [1, 2])

    def test_stop_producing_drops_held(self):
        """When the transport has gone the held acknowledgements are dropped."""
        self.valve.pauseProducing()
        self.valve.run(lambda: self.ran.append(1))
        self.valve.stopProducing()
        self.valve.resumeProducing()
        self.assertEqual(self.ran, [])
