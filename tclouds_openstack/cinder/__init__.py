"""Cinder adapters: the volume jurisdiction scheduler filter."""
