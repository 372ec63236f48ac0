"""tclouds-openstack: plugins that make a stock OpenStack cloud trustworthy.

Each capability has a pure core (tpm/, attestation/appraisal/, securelog/, blockstore/,
cloudstore/) that takes bytes and returns values or raises, and thin adapters into
OpenStack (Nova filters, a castellan driver, a Swift middleware, OSC commands).
"""
