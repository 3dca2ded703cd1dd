#!/bin/sh
echo "$GREETING"
echo "running as $(id -u):$(id -g) in $(pwd)"
