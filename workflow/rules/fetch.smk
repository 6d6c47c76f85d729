# Downloads of real datasets (cifar10/images with a url) into resources/, on the submit host:
# compute nodes often have no internet, hence `localrule`. One rule per fetched dataset, so each
# output carries its own pinned checksum for Snakemake's ensure() on top of `wsgm fetch`'s check.
for _name, _ds in config["datasets"].items():
    if _ds["kind"] not in specs.FETCHED_KINDS or not _ds["url"]:
        continue
    _alg = "sha256" if _ds["sha256"] else "md5"
    _file = specs.resource_path(_name, _ds["url"])

    rule:
        name:
            f"fetch_{_name}"
        localrule: True
        output:
            file=ensure(_file, **{_alg: _ds[_alg].lower()}),
            record=record(_file),
        params:
            url=_ds["url"],
            checksum=f"--{_alg} {_ds[_alg]}",
        conda:
            ENV
        log:
            specs.log_path("fetch", _name),
        shell:
            "python -m wsgm fetch --url {params.url:q} {params.checksum} --out {output.file} > {log} 2>&1"
