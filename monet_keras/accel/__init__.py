"""Speed: the policy that picks the device-specific tricks once (CPU matmul convolutions, fused
Adam, malloc settings, precision), and the devices a run uses."""
