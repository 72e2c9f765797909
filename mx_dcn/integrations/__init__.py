"""mx_dcn inside other training frameworks. `mx_dcn.integrations.openmmlab`: mmengine / mmcv / mmdet /
mmdet3d (`mx_dcn.use_in_mmcv()`). Nothing here is imported by `import mx_dcn`."""
